"""ONNX's operator conformance cases through each backend (``tailor_ir.conformance``).

Invariant 7 of the design: a backend computes an op exactly (values, shape, dtype) or refuses it with a clear
error; it never answers wrongly. ``conformance/<backend>.txt`` lists the cases that pass (written by
``benchmarks/onnx_conformance.py --update-tests``): each must keep passing. ``<backend>_known_bad.txt`` lists the
cases still answered wrongly or crashing; it must only shrink (a listed case that no longer fails must leave it).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tailor_ir import conformance

LISTS = Path(__file__).parent / "conformance"


def _names(path: Path) -> set[str]:
    return {line.strip() for line in path.read_text().splitlines() if line.strip()} if path.exists() else set()


@pytest.mark.parametrize("backend", conformance.BACKENDS)
def test_every_conformance_case_passes_or_is_refused(backend: str) -> None:
    outcomes = list(conformance.run_all(backend))
    passing, known_bad = _names(LISTS / f"{backend}.txt"), _names(LISTS / f"{backend}_known_bad.txt")
    assert passing, f"no pass list for {backend}: run benchmarks/onnx_conformance.py --update-tests"
    by_name = {o.case: o for o in outcomes}
    regressed = [by_name[n] for n in sorted(passing) if n in by_name and by_name[n].status != "pass"]
    bad = [o for o in outcomes if o.status in ("wrong", "crash") and o.case not in known_bad]
    fixed = sorted(n for n in known_bad if n in by_name and by_name[n].status not in ("wrong", "crash"))
    report = [f"{o.status} {o.case}: {o.detail}" for o in regressed + bad]
    assert not report, f"{backend}: {len(regressed)} passing cases regressed, {len(bad)} wrong/crash:\n" + "\n".join(
        report[:50]
    )
    assert not fixed, f"{backend}: remove these fixed cases from {backend}_known_bad.txt: {fixed}"
    assert not (set(passing) - set(by_name)), "the pass list names cases the pinned onnx no longer builds"


def test_a_case_that_answers_wrongly_is_classified_wrong() -> None:
    case = conformance.case_named("test_relu")

    def negating_runner(graph, feed):
        return [-feed[graph.input_names[0]]]

    assert conformance.run_case(case, negating_runner).status == "wrong"
    assert conformance.run_case(case, lambda g, f: [case.outputs[0].astype("float64")]).status == "wrong"
    assert conformance.run_case(case, lambda g, f: [case.outputs[0]]).status == "pass"
