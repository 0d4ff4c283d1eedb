"""Benchmark: ONNX's operator conformance cases through each rehydrating backend (``tailor_ir.conformance``).

For each backend (torch, keras, paddle; each in its own process, as TensorFlow and Paddle do not share one) and,
as the obvious alternative, bare onnx2torch: how many of the tensor node cases the pinned ``onnx`` builds
pass, answer wrongly, are refused, or crash, overall and per op type. Writes ``results/onnx_conformance.{json,md}``
and, with ``--update-tests``, the lists of passing cases that the test suite holds each backend to
(``tests/tailor_ir/conformance/<backend>.txt``).

    python benchmarks/onnx_conformance.py [--backends torch,keras,paddle,onnx2torch] [--update-tests]

A run over some of the backends keeps the other backends' rows and notes of the existing results.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from collections.abc import Sequence

from _common import RESULTS, ROOT, write_results

PASS_LISTS = ROOT / "tests" / "tailor_ir" / "conformance"
ALL = ("torch", "keras", "paddle", "onnx2torch")


def _bare_onnx2torch():
    """The alternative: onnx2torch's own converters, no extensions (rehydrate = ``onnx2torch.convert``)."""
    import numpy as np
    import onnx2torch
    import torch

    def run(graph, feed):
        module = onnx2torch.convert(graph.model).eval()
        with torch.no_grad():
            out = module(*[torch.from_numpy(np.ascontiguousarray(feed[n])) for n in graph.input_names])
        outs = out if isinstance(out, (tuple, list)) else [out]
        return [o.numpy() for o in outs]

    return run


def measure(backend: str) -> dict:
    """Run every case through ``backend`` in this process; outcomes as plain dicts."""
    from tailor_ir import conformance
    from tailor_ir.imports import preload_isolated_libraries

    preload_isolated_libraries()
    runner = _bare_onnx2torch() if backend == "onnx2torch" else conformance.backend_runner(backend)
    start = time.perf_counter()
    outcomes = [conformance.run_case(case, runner) for case in conformance.node_cases()]
    return {"backend": backend, "seconds": time.perf_counter() - start, "outcomes": [vars(o) for o in outcomes]}


def measure_in_subprocess(backend: str) -> dict:
    code = f"import json, sys; sys.path.insert(0, {str(ROOT / 'benchmarks')!r}); import onnx_conformance as b; " \
           f"print('@@' + json.dumps(b.measure({backend!r})))"
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT)
    for line in proc.stdout.splitlines():
        if line.startswith("@@"):
            return json.loads(line[2:])
    raise RuntimeError(f"{backend}: the conformance run died (exit {proc.returncode}):\n{proc.stderr[-3000:]}")


def _with_others(name: str, run: Sequence[str], rows: list[dict], notes: list[str]) -> tuple[list[dict], list[str]]:
    """``rows`` and ``notes`` plus the existing results' rows and notes of the backends not in ``run``."""
    path = RESULTS / f"{name}.json"
    old = json.loads(path.read_text()) if path.exists() else {"rows": [], "notes": []}
    kept = [r for r in old["rows"] if r["backend"] not in run]
    order = {b: i for i, b in enumerate(ALL)}
    merged = sorted(kept + rows, key=lambda r: order.get(r["backend"], len(order)))  # stable: op order kept
    kept_notes = [n for n in old.get("notes", []) if n.split(" ", 1)[0] not in run]
    return merged, sorted(kept_notes + notes, key=lambda n: order.get(n.split(" ", 1)[0], len(order)))


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--backends", default=",".join(ALL), help="comma-separated, from: " + ", ".join(ALL))
    parser.add_argument("--update-tests", action="store_true", help="rewrite the test suite's lists of passing cases")
    args = parser.parse_args(argv)
    from tailor_ir.conformance import STATUSES, summary

    rows, per_op_rows, notes = [], [], []
    for backend in args.backends.split(","):
        result = measure_in_subprocess(backend)
        outcomes = result["outcomes"]
        from tailor_ir.conformance import Outcome

        stats = summary([Outcome(**o) for o in outcomes])
        passing_ops = sum(1 for counts in stats["per_op"].values() if counts["pass"])
        rows.append({"backend": backend, "cases": stats["cases"], **stats["total"], "op types passing": passing_ops,
                     "seconds": round(result["seconds"], 1)})
        for op, counts in stats["per_op"].items():
            per_op_rows.append({"backend": backend, "op": op, **counts})
        bad = [o for o in outcomes if o["status"] in ("wrong", "crash")]
        notes += [f"{backend} {o['status']}: {o['case']} — {o['detail']}" for o in bad[:200]]
        if args.update_tests and backend != "onnx2torch":
            PASS_LISTS.mkdir(parents=True, exist_ok=True)
            passing = sorted(o["case"] for o in outcomes if o["status"] == "pass")
            (PASS_LISTS / f"{backend}.txt").write_text("\n".join(passing) + "\n")
        print(rows[-1], flush=True)
    run = args.backends.split(",")
    rows, notes = _with_others("onnx_conformance", run, rows, notes)
    per_op_rows, _ = _with_others("onnx_conformance_per_op", run, per_op_rows, [])
    write_results("onnx_conformance", rows, ["backend", "cases", *STATUSES, "op types passing", "seconds"], notes)
    write_results("onnx_conformance_per_op", per_op_rows, ["backend", "op", *STATUSES])


if __name__ == "__main__":
    main()
