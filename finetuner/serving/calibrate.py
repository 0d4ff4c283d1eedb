"""onnxruntime session options chosen on the serving machine, by timing each candidate, not assumed.

Measured on two CPU kinds (issue 18): session options that win on one CPU lose on the other (MiniLM at batch 1,
onnxruntime's defaults, whose idle threads spin, ran 1.2x faster than finetuner's serving options on an AVX-512
Xeon and the same on an AVX2 EPYC; spinning threads hurt where replicas share cores). So a server can time the candidates on a sample batch at start and keep the fastest; the choice
and the timings are reported (the Executor logs them) and any candidate can be forced by name.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

SESSION_CHOICES: dict[str, dict[str, Any]] = {
    "quiet": {"spinning": False, "level": "all"},  # finetuner's serving default: idle threads sleep
    "spinning": {"spinning": True, "level": "all"},  # onnxruntime's default: idle threads busy-wait
    "extended": {"spinning": False, "level": "extended"},  # no layout rewrites (NCHWc convolutions)
}
AUTO = "auto"


def check_choice(choice: str) -> str:
    """``choice`` if it names a candidate (or ``auto``), else a ValueError listing them."""
    if choice != AUTO and choice not in SESSION_CHOICES:
        raise ValueError(f"Unknown session choice {choice!r}; use {AUTO!r} or one of {', '.join(SESSION_CHOICES)}.")
    return choice


def options_for(choice: str, threads: int = 0) -> Any:
    """The ``onnxruntime.SessionOptions`` of one candidate."""
    import onnxruntime as ort

    from finetuner.optimize import session_options

    settings = SESSION_CHOICES[check_choice(choice)]
    options = session_options(threads, spinning=settings["spinning"])
    if settings["level"] == "extended":
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED
    return options


def calibrate(
    path: str | Path, feed: Mapping[str, np.ndarray], threads: int = 0, providers: Sequence[str] = (),
    repeat: int = 5,
) -> tuple[Any, str, dict[str, float]]:
    """Time every candidate on ``feed`` (median of ``repeat`` runs after one warm-up, rounds interleaved so
    that other load hits each alike); return (the fastest session, its name, seconds per candidate)."""
    import onnxruntime as ort

    sessions = {
        name: ort.InferenceSession(str(path), options_for(name, threads), providers=list(providers) or None)
        for name in SESSION_CHOICES
    }
    seconds = median_run_seconds(sessions, feed, repeat)
    best = min(seconds, key=seconds.__getitem__)
    return sessions[best], best, seconds


def median_run_seconds(sessions: Mapping[str, Any], feed: Mapping[str, np.ndarray], rounds: int = 5) -> dict[str, float]:
    """Median seconds per run of each onnxruntime session on ``feed``: one warm-up each, then ``rounds`` rounds
    interleaved, so that other load on the machine hits every session alike."""
    times: dict[str, list[float]] = {name: [] for name in sessions}
    for session in sessions.values():
        session.run(None, dict(feed))
    for _ in range(rounds):
        for name, session in sessions.items():
            start = time.perf_counter()
            session.run(None, dict(feed))
            times[name].append(time.perf_counter() - start)
    return {name: float(np.median(t)) for name, t in times.items()}
