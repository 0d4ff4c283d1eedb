"""ONNX's own operator conformance cases, run through a rehydrating backend.

The ``onnx`` package builds its node test cases in memory (``onnx.backend.test.case.node``: one single-node model,
its inputs and the outputs of the ONNX authors' numpy reference). Each case is rehydrated into a framework with
``rehydrate(graph, check=False)``, run in inference mode, and classified:

- ``pass``: every output has the expected shape, dtype and values (the case's own tolerances);
- ``wrong``: it ran and answered differently — the one outcome a backend must never give;
- ``unsupported``: the backend refused with ``UnsupportedOpError`` / ``UnsupportedDtypeError`` (a clear refusal);
- ``crash``: any other exception — a bug to fix or turn into a clear refusal.

Only *tensor* cases count (every input and output a numpy array; sequence and optional cases are left out).
``benchmarks/onnx_conformance.py`` writes the table per backend; the tests run the cases against the committed
list of passing cases, so a pass cannot silently turn into a failure.
"""

from __future__ import annotations

import dataclasses
import importlib
import warnings
from collections.abc import Callable, Iterator, Sequence
from functools import cache
from typing import Any

import numpy as np
import onnx
from onnx import numpy_helper

from .errors import UnsupportedDtypeError, UnsupportedOpError
from .graph import Graph

BACKENDS = ("torch", "keras", "paddle")
STATUSES = ("pass", "wrong", "unsupported", "crash")


@dataclasses.dataclass(frozen=True)
class Case:
    """One conformance case: a single-node model with its inputs and the reference outputs."""

    name: str
    model: onnx.ModelProto
    inputs: tuple[np.ndarray, ...]
    outputs: tuple[np.ndarray, ...]
    rtol: float
    atol: float

    @property
    def op_type(self) -> str:
        return self.model.graph.node[0].op_type if self.model.graph.node else "?"

    @property
    def opset(self) -> int:
        return max((int(i.version) for i in self.model.opset_import if i.domain in ("", "ai.onnx")), default=0)


@dataclasses.dataclass(frozen=True)
class Outcome:
    """The result of one case: its status and, unless it passed, why."""

    case: str
    op_type: str
    status: str
    detail: str = ""


@cache
def node_cases() -> tuple[Case, ...]:
    """Every tensor node case that the pinned ``onnx`` builds, in a stable order (by name)."""
    from onnx.backend.test.loader import load_node_model_tests

    with warnings.catch_warnings():  # the reference implementations overflow on purpose (casts, -inf reductions)
        warnings.simplefilter("ignore")
        tests = load_node_model_tests()
    cases = []
    for test in tests:
        if test.model is None or not test.data_sets:
            continue
        inputs, outputs = test.data_sets[0]
        arrays = [_as_array(a) for a in (*inputs, *outputs)]
        if any(a is None for a in arrays):  # a sequence or an optional: not a tensor case
            continue
        split = len(inputs)
        cases.append(Case(test.name, test.model, tuple(arrays[:split]), tuple(arrays[split:]), test.rtol, test.atol))
    return tuple(sorted(cases, key=lambda c: c.name))


def _as_array(value: object) -> np.ndarray | None:
    """A case's tensor as numpy (TensorProtos carry the types numpy lacks, e.g. bfloat16 via ml_dtypes)."""
    if isinstance(value, onnx.TensorProto):
        return numpy_helper.to_array(value)
    if isinstance(value, (np.ndarray, np.generic)):
        return np.asarray(value)
    return None


def case_named(name: str) -> Case:
    """The tensor case called ``name`` (KeyError if it is not one)."""
    for case in node_cases():
        if case.name == name:
            return case
    raise KeyError(name)


def compare(got: Sequence[np.ndarray], case: Case) -> str:
    """'' when ``got`` matches the case's outputs in count, shape, dtype and value; else what differs."""
    if len(got) != len(case.outputs):
        return f"{len(got)} outputs, expected {len(case.outputs)}"
    for index, (value, ref) in enumerate(zip(got, case.outputs)):
        value = np.asarray(value)
        if value.shape != ref.shape:
            return f"output {index}: shape {value.shape}, expected {ref.shape}"
        if value.dtype != ref.dtype:
            return f"output {index}: dtype {value.dtype}, expected {ref.dtype}"
        if ref.dtype == object or ref.dtype.kind in "biuUS":
            if not np.array_equal(value, ref):
                return f"output {index}: values differ"
            continue
        try:
            np.testing.assert_allclose(value, ref, rtol=case.rtol, atol=case.atol, equal_nan=True)
        except AssertionError as exc:
            lines = [line for line in str(exc).splitlines() if "Max" in line]
            return f"output {index}: values differ ({'; '.join(lines) or 'mismatch'})"
    return ""


Runner = Callable[[Graph, dict[str, np.ndarray]], Sequence[np.ndarray]]


def backend_runner(backend: str) -> Runner:
    """rehydrate + run in inference mode for one backend (``tailor_ir.backends.<backend>``), as numpy outputs."""
    if backend not in BACKENDS:
        raise ValueError(f"unknown backend {backend!r}; choose one of {', '.join(BACKENDS)}")
    module = importlib.import_module(f"tailor_ir.backends.{backend}")

    def run(graph: Graph, feed: dict[str, np.ndarray]) -> Sequence[np.ndarray]:
        model = module.rehydrate(graph, check=False)
        return module.numpy_forward(model, graph)(feed)

    return run


def run_case(case: Case, runner: Runner) -> Outcome:
    """Rehydrate and run one case; classify the result (never raises for a backend's failure)."""
    graph = Graph(model=case.model)
    feed = {name: value for name, value in zip(graph.input_names, case.inputs)}
    try:
        got = runner(graph, feed)
    except (UnsupportedOpError, UnsupportedDtypeError) as exc:
        return Outcome(case.name, case.op_type, "unsupported", str(exc).splitlines()[0][:300])
    except Exception as exc:  # noqa: BLE001 - classifying every failure is the point
        return Outcome(case.name, case.op_type, "crash", f"{type(exc).__name__}: {str(exc)[:300]}")
    try:
        detail = compare([np.asarray(g) for g in got], case)
    except Exception as exc:  # noqa: BLE001 - an output that cannot even be compared is wrong
        detail = f"{type(exc).__name__}: {exc}"
    return Outcome(case.name, case.op_type, "wrong" if detail else "pass", detail)


def run_all(backend: str, cases: Sequence[Case] | None = None) -> Iterator[Outcome]:
    """Outcomes of ``cases`` (default: every tensor node case) through ``backend``."""
    runner = backend_runner(backend)
    for case in node_cases() if cases is None else cases:
        yield run_case(case, runner)


def summary(outcomes: Sequence[Outcome]) -> dict[str, Any]:
    """Counts per status, overall and per op type."""
    totals = {status: 0 for status in STATUSES}
    per_op: dict[str, dict[str, int]] = {}
    for outcome in outcomes:
        totals[outcome.status] += 1
        per_op.setdefault(outcome.op_type, {s: 0 for s in STATUSES})[outcome.status] += 1
    return {"total": totals, "cases": len(outcomes), "per_op": dict(sorted(per_op.items()))}
