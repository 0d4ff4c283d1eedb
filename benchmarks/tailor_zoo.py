"""Benchmark: the Tailor on whole model libraries (``models/<framework>_sweep.py``, checks in ``models/sweep.py``).

Every model of a framework's sweep — every torchvision classification builder and the common Hugging Face
families, every ``keras.applications`` model, every ``paddle.vision.models`` builder, plus hand-written text and
multi-input models — is checked in its own process: default-cut equivalence to the classifier's input (1e-4
relative, or within ``tailor_ir.runtime.NOISE_FACTOR`` times onnxruntime's own float32 noise on the cut, which
deep random-weight nets amplify past 1e-4 in every implementation), ``output_dim=64`` unit norm, trainable
tensors and how many one Adam step moves, seconds per stage.
Writes ``results/tailor_zoo_<framework>.{json,md}``.

    python benchmarks/tailor_zoo.py --framework torch [--models resnet18,bert] [--timeout 600]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys

from _common import RESULTS, ROOT, write_results

COLUMNS = ["model", "ok", "layer_name", "shape", "rel_error", "f32_noise", "unit_norm", "trainable_params",
           "trainable_tensors", "moved_tensors", "export_s", "surgery_s", "rehydrate_s", "check_s", "cut_s",
           "train_step_s", "commit", "error"]


def one(framework: str, name: str) -> dict:
    from models import sweep

    row = sweep.check_model(framework, name, sweep.entries(framework)[name])
    row.pop("traceback", None)
    return row


def merged(framework: str, fresh: list[dict], order: list[str]) -> list[dict]:
    """``fresh`` rows replacing the same models' rows of the existing results; rows in the sweep's order."""
    path = RESULTS / f"tailor_zoo_{framework}.json"
    by_name = {r["model"]: r for r in (json.loads(path.read_text())["rows"] if path.exists() else [])}
    by_name.update({r["model"]: r for r in fresh})
    rank = {name: i for i, name in enumerate(order)}
    return sorted(by_name.values(), key=lambda r: rank.get(r["model"], len(rank)))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--framework", required=True, choices=("torch", "keras", "paddle"))
    parser.add_argument("--models", help="comma-separated subset (default: every model of the sweep)")
    parser.add_argument("--timeout", type=float, default=900, help="seconds per model before it counts as failed")
    parser.add_argument("--merge", action="store_true",
                        help="keep the other models' rows of the existing results (to re-run a subset)")
    parser.add_argument("--one", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        print("@@" + json.dumps(one(args.framework, args.one), default=str))
        return
    from models import sweep

    names = args.models.split(",") if args.models else list(sweep.entries(args.framework))
    commit = _commit()
    rows = []
    for name in names:
        cmd = [sys.executable, __file__, "--framework", args.framework, "--one", name]
        try:
            proc = subprocess.run(cmd, capture_output=True, text=True, timeout=args.timeout, cwd=ROOT)
            lines = [line for line in proc.stdout.splitlines() if line.startswith("@@")]
            row = json.loads(lines[-1][2:]) if lines else {
                "model": name, "ok": False, "error": f"died (exit {proc.returncode}): {proc.stderr[-300:]}"}
        except subprocess.TimeoutExpired:
            row = {"model": name, "ok": False, "error": f"timed out after {args.timeout:.0f} s"}
        row["commit"] = commit
        rows.append(row)
        print(f"{name}: {'ok' if row['ok'] else 'FAIL ' + str(row.get('error'))}", flush=True)
    order = list(sweep.entries(args.framework))
    if args.merge:
        rows = merged(args.framework, rows, order)
    print(write_results(f"tailor_zoo_{args.framework}", rows, COLUMNS, summary(rows, order, args.framework)))


def _commit() -> str:
    """The checked-out commit the rows are measured on (``+`` when tracked files differ from it)."""
    head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, cwd=ROOT)
    dirty = subprocess.run(["git", "diff", "--quiet", "HEAD", "--", "finetuner", "tailor_ir", "models"], cwd=ROOT)
    return head.stdout.strip() + ("+" if dirty.returncode else "") if head.returncode == 0 else "unknown"


def summary(rows: list[dict], order: list[str], framework: str) -> list[str]:
    """The notes under the table: how many pass, which of the sweep's entries were not run, how to reproduce."""
    passed = sum(bool(r["ok"]) for r in rows)
    run = {r["model"] for r in rows}
    missing = [name for name in order if name not in run]
    notes = [f"{passed} of {len(rows)} models run pass every check ({100 * passed / max(len(rows), 1):.0f}%); "
             f"{len(missing)} of the sweep's {len(order)} entries not run{': ' + ', '.join(missing) if missing else ''}."]
    failed = [r["model"] for r in rows if not r["ok"]]
    if failed:
        notes.append(f"Failing: {', '.join(failed)}.")
    from models import sweep

    notes += sweep.notes(framework)
    notes += [
        "A row with a layer_name is cut there (a dense-prediction model whose default cut is not an embedding); "
        "every other row is the default cut.",
        "Timings are noisy (the sweep shares a 2-core machine with other work, one model per process). cut_s is "
        "the first to_embedding, export included; the stage columns time a second tailoring of the same model, "
        "whose export_s near 0 is the frontend reusing the first export.",
        "commit: the code each row was measured on (+: with uncommitted changes to finetuner/tailor_ir/models); "
        "a row without one predates the column.",
        "Reproduce: OMP_NUM_THREADS=1 python benchmarks/tailor_zoo.py --framework <fw> [--models a,b --merge].",
    ]
    return notes


if __name__ == "__main__":
    main()
