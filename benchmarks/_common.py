"""Shared pieces of the benchmark scripts: timing, peak memory, and writing results (JSON + Markdown)."""

from __future__ import annotations

import json
import os
import platform
import resource
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"
if str(ROOT) not in sys.path:  # the reference zoo lives in the repository, not in site-packages
    sys.path.insert(0, str(ROOT))

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("JINA_OPTOUT_TELEMETRY", "1")


def peak_rss_mb() -> float:
    """Peak resident memory of this process so far, in MB."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def timed(fn: Callable[[], object]) -> tuple[object, float]:
    start = time.perf_counter()
    result = fn()
    return result, time.perf_counter() - start


def median_seconds(fn: Callable[[], object], repeat: int = 5, warmup: int = 1) -> float:
    """Median wall time of ``fn`` over ``repeat`` runs after ``warmup`` runs."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    times.sort()
    return times[len(times) // 2]


def machine() -> dict:
    """Where a benchmark ran: Python, architecture, cores, CPU model and its widest x86 vector extension (float
    results and speeds differ between AVX2 and AVX-512 machines), and the commit (``+changes`` when the code
    measured, :data:`MEASURED_PATHS`, differs from it)."""
    return {"python": platform.python_version(), "machine": platform.machine(), "cpus": os.cpu_count(),
            **_cpu(), "commit": _commit()}


def _cpu() -> dict:
    try:
        info = Path("/proc/cpuinfo").read_text()
    except OSError:
        return {}
    model = next((line.split(":", 1)[1].strip() for line in info.splitlines() if line.startswith("model name")), "")
    flags = next((set(line.split(":", 1)[1].split()) for line in info.splitlines() if line.startswith("flags")), set())
    vector = "AVX-512" if "avx512f" in flags else "AVX2" if "avx2" in flags else "no AVX2"
    return {"cpu": model, "vector": vector}


MEASURED_PATHS = ("finetuner", "tailor_ir", "models", "benchmarks", ":!benchmarks/results", "setup.cfg", "constraints.txt")
"""What a benchmark's numbers can depend on: a change elsewhere (README, tests, results) does not mark a run."""


def _commit() -> str:
    import subprocess

    root = Path(__file__).resolve().parent.parent
    try:
        sha = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=root, capture_output=True, text=True,
                             check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no", "--", *MEASURED_PATHS],
                               cwd=root, capture_output=True, text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return sha + ("+changes" if dirty else "")


def describe_machine(info: dict | None = None) -> str:
    """:func:`machine` (or a recorded one) as a line for a results file."""
    info = info or machine()
    cpu = info.get("cpu") or info.get("machine")
    return (f"{cpu} ({info.get('vector', '?')}), {info.get('cpus')} cores, Python {info.get('python')}, "
            f"commit {info.get('commit', '?')}")


def write_results(name: str, rows: Sequence[dict], columns: Sequence[str], notes: Sequence[str] = ()) -> Path:
    """Write ``results/<name>.json`` and ``results/<name>.md`` (a table of ``columns``); return the JSON path."""
    payload = {"benchmark": name, "machine": machine(), "time": time.strftime("%Y-%m-%d %H:%M", time.gmtime()),
               "rows": list(rows), "notes": list(notes)}
    lines = [f"# {name}", "", f"Machine: {describe_machine(payload['machine'])}. Run {payload['time']} UTC.", "",
             "| " + " | ".join(columns) + " |", "|" + " --- |" * len(columns)]
    for row in rows:
        lines.append("| " + " | ".join(_fmt(row.get(c, "")) for c in columns) + " |")
    lines += ["", *[f"- {n}" for n in notes]]
    return write_json_and_markdown(name, payload, "\n".join(lines) + "\n")


def write_json_and_markdown(name: str, payload: dict, markdown: str) -> Path:
    """``results/<name>.json`` (``payload``) and ``results/<name>.md``, each written atomically
    (:func:`tailor_ir.files.atomic_write_bytes`); returns the JSON path."""
    from tailor_ir.files import atomic_write_bytes

    json_path = atomic_write_bytes(RESULTS / f"{name}.json", json.dumps(payload, indent=2, default=str).encode())
    atomic_write_bytes(RESULTS / f"{name}.md", markdown.encode())
    return json_path


def _fmt(value: object) -> str:
    if isinstance(value, float):
        return f"{value:.3g}"
    return str(value)


# ---- the tailor benchmarks (tailor_torch / tailor_keras / tailor_paddle) share their stages and their driver ----
from models.sweep import tailor_stages  # noqa: E402,F401  (one place for the staged to_embedding)

STAGE_COLUMNS = ["export_s", "surgery_s", "rehydrate_s", "check_s", "to_embedding_s", "bare_export_s",
                 "to_embedding_vs_export", "train_step_native_s", "train_step_tailored_s", "train_step_ratio",
                 "peak_rss_mb"]


def stage_row(name: str, times: dict, bare_export_s: float, native_s: float, tailored_s: float, **extra) -> dict:
    """One result row: the stage times, both ratios and the peak memory."""
    return {"model": name, **extra, **times, "bare_export_s": bare_export_s,
            "to_embedding_vs_export": times["to_embedding_s"] / bare_export_s,
            "train_step_native_s": native_s, "train_step_tailored_s": tailored_s,
            "train_step_ratio": tailored_s / native_s, "peak_rss_mb": peak_rss_mb()}


def run_per_model(
    script: str, doc: str, models: Sequence[str], measure: Callable[[str, int], dict], name: str,
    columns: Sequence[str], notes: Sequence[str],
) -> None:
    """The command line of a per-model benchmark: each model measured in its own process, then one table."""
    import argparse
    import subprocess

    parser = argparse.ArgumentParser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", default=",".join(models), help="comma-separated subset of " + ", ".join(models))
    parser.add_argument("--steps", type=int, default=10, help="timed training steps per model")
    parser.add_argument("--one", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        print(json.dumps(measure(args.one, args.steps)))
        return
    rows = []
    for model in args.models.split(","):
        proc = subprocess.run([sys.executable, script, "--one", model, "--steps", str(args.steps)],
                              capture_output=True, text=True)
        if proc.returncode != 0:
            rows.append({"model": model, "error": proc.stderr.strip().splitlines()[-1:]})
            print(proc.stderr[-3000:], file=sys.stderr)
            continue
        row = json.loads(proc.stdout.strip().splitlines()[-1])
        rows.append(row)
        print(f"{model}: to_embedding {row['to_embedding_s']:.2f}s = {row['to_embedding_vs_export']:.2f}x bare "
              f"export; train step {row['train_step_ratio']:.3f}x native; peak RSS {row['peak_rss_mb']:.0f} MB",
              flush=True)
    print(write_results(name, rows, columns, notes))


def interleaved_train_steps(step_seconds: Callable[[object], float], native: object, tailored: object,
                            rounds: int = 2) -> tuple[float, float]:
    """Best of ``rounds`` interleaved median step times of the native and the tailored model.

    Interleaving makes a noisy neighbour hit both sides alike.
    """
    t_native = t_tailored = float("inf")
    for _ in range(rounds):
        t_native = min(t_native, step_seconds(native))
        t_tailored = min(t_tailored, step_seconds(tailored))
    return t_native, t_tailored
