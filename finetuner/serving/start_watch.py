"""Restart an Executor whose server never answers after it says it is ready, instead of waiting on it forever.

A Flow start forks one process per Executor. Each sets its ``is_ready`` event once its gRPC server has started,
and the Flow then health-checks it until it answers. Very rarely (about once in fifteen test-suite runs) a forked
Executor's server starts but never answers: its event loop idles, its listening socket's backlog grows, and the
Flow waits for it until Jina's ``timeout_ready`` (10 minutes), then fails. The likely cause is gRPC's core not
being fork-safe: the process that forks often has live gRPC clients and servers of its own.

A healthy server answers the first health check within milliseconds of being ready, so an Executor that is
ready but has not answered for ``FINETUNER_FLOW_STALL_S`` seconds (default 60) is stuck: its process is killed
and started again from the same arguments, once. A second stall fails the Flow start (Jina's
``RuntimeFailToStart``) with a logged error naming the Executor. Loading time before ``is_ready`` (a model, a
pool to embed) is not watched: only the silence after it.

:func:`install` patches Jina's pod start-up wait; :func:`finetuner.serving.jina_env.prepare_jina` calls it.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from typing import Any

STALL_ENV = "FINETUNER_FLOW_STALL_S"
DEFAULT_STALL_S = 60.0
RESTARTS = 1
POLL_S = 0.2

logger = logging.getLogger("finetuner.serving")


def stall_seconds() -> float:
    """Seconds an Executor may stay ready but silent: ``FINETUNER_FLOW_STALL_S``, else 60."""
    raw = os.environ.get(STALL_ENV, "")
    try:
        value = float(raw) if raw else DEFAULT_STALL_S
    except ValueError:
        raise ValueError(f"{STALL_ENV}={raw!r} is not a number of seconds") from None
    if value <= 0:
        raise ValueError(f"{STALL_ENV}={raw!r} must be a positive number of seconds")
    return value


class StallWatch:
    """Watches one starting pod from a thread; kills its process once it is ready but silent for ``stall_s``."""

    def __init__(self, pod: Any, stall_s: float) -> None:
        self.pod = pod
        self.stall_s = stall_s
        self.stalled = False
        self._lock = threading.Lock()
        self._stopped = threading.Event()
        self._thread = threading.Thread(target=self._watch, name=f"stall-watch-{pod.name}", daemon=True)

    def start(self) -> StallWatch:
        self._thread.start()
        return self

    def stop(self) -> bool:
        """Stop watching; True when the pod was found stalled (and its process killed)."""
        with self._lock:
            self._stopped.set()
        self._thread.join()
        return self.stalled

    def _watch(self) -> None:
        ready_since: float | None = None
        while not self._stopped.wait(POLL_S):
            if ready_since is None and self.pod.is_ready.is_set():
                ready_since = time.monotonic()
            if ready_since is not None and time.monotonic() - ready_since > self.stall_s:
                with self._lock:
                    if self._stopped.is_set():
                        return
                    self.stalled = True
                    _kill(self.pod)
                return


def _kill(pod: Any) -> None:
    """End the pod's process and tell the waiting Flow it is down."""
    pod.worker.kill()
    pod.worker.join(10)
    pod.is_shutdown.set()


def _restart(pod: Any) -> None:
    """Start the pod again from its arguments (the same Executor, port and environment), with fresh events."""
    pod.__init__(pod.args)
    pod.worker.start()


def _watchable(pod: Any) -> bool:
    """Only a plain Executor process (no Raft twin) is restarted; gateways and heads are not health-checked."""
    from jina.enums import PodRoleType

    return (
        getattr(pod.args, "pod_role", None) == PodRoleType.WORKER
        and getattr(pod, "raft_worker", None) is None
        and hasattr(pod, "worker")
    )


def _watched(wait: Any) -> Any:
    """Jina's async pod wait, with a stall watch and one restart."""

    async def async_wait_start_success(pod: Any) -> None:
        if not _watchable(pod):
            return await wait(pod)
        stall_s = stall_seconds()
        for attempt in range(RESTARTS + 1):
            watch = StallWatch(pod, stall_s).start()
            try:
                await wait(pod)
            except Exception:
                if not watch.stop():
                    raise
            else:
                if not watch.stop():
                    return
            if attempt == RESTARTS:
                break
            logger.warning(
                "Executor %r started but its server did not answer for %.0f s; killed and started again",
                pod.name, stall_s,
            )
            _restart(pod)
        logger.error(
            "Executor %r started but its server did not answer for %.0f s, %d times; the Flow start fails. "
            "Start it again; on a slow or busy machine raise %s.", pod.name, stall_s, RESTARTS + 1, STALL_ENV,
        )
        from jina.excepts import RuntimeFailToStart

        raise RuntimeFailToStart(f"Executor {pod.name!r} did not answer after starting")

    async_wait_start_success.finetuner_watched = True
    return async_wait_start_success


def install() -> None:
    """Patch Jina's pod start-up wait (idempotent)."""
    from jina.orchestrate.pods import BasePod

    current = BasePod.async_wait_start_success
    if not getattr(current, "finetuner_watched", False):
        BasePod.async_wait_start_success = _watched(current)
