"""Jina's side effects, switched off before any Flow starts: telemetry, the public-IP lookup, 0.0.0.0 binding,
uvloop, a LAN address in the start banner of a Flow on loopback; and a watch that restarts an Executor stuck at
start-up (:mod:`finetuner.serving.start_watch`).

Jina 3.34 sends telemetry unless ``JINA_OPTOUT_TELEMETRY`` is set, looks up the public IP at every Flow start
(no switch: it is patched out here) and binds to 0.0.0.0 unless told otherwise. Its start banner lists a
"Private" address, this machine's LAN address, even when the Flow listens on 127.0.0.1 only and cannot be reached
there; a Flow on loopback shows its own host in that row instead. Executors run in forked
processes, so patches made here reach them too.

uvloop: whenever Jina gets an event loop (a Client call, a Flow start) it installs uvloop's event-loop policy if
uvloop is importable, and every Executor forked afterwards runs its gRPC server (grpc.aio) on uvloop. grpc.aio
supports only asyncio's own loop: such an Executor sometimes listens without ever accepting a connection, and the
Flow start waits for it forever (seen in the test suite: the Executor's socket backlog growing while its uvloop
sat in epoll). ``JINA_DISABLE_UVLOOP`` stops Jina from installing the policy, and a policy it already installed
is put back to asyncio's default. That was not the whole cause: the same stall was seen once more without uvloop,
and :mod:`finetuner.serving.start_watch` now restarts such an Executor instead of waiting on it.
"""

from __future__ import annotations

import asyncio
import ipaddress
import os
from typing import Any

LOOPBACK = "127.0.0.1"
QUIET_ENV = {
    "JINA_OPTOUT_TELEMETRY": "1",
    "JINA_HIDE_SURVEY": "1",
    "JINA_LOG_LEVEL": "WARNING",
}


def _no_public_ip(*args: object, **kwargs: object) -> None:
    """Stands in for ``jina.helper.get_public_ip``: never reach the network."""
    return None


def is_loopback(host: str | None) -> bool:
    """Whether ``host`` (an address or ``localhost``) names this machine's loopback interface only."""
    if not host:
        return False
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def _private_address_of(original: property) -> property:
    """Jina's ``address_private`` (the banner's "Private" row: this machine's LAN address), except that a Flow
    listening on loopback only is reachable at its own host and nowhere else, so that is what it shows."""

    def address_private(self: Any) -> str:
        host = getattr(self, "host", None)
        return host if is_loopback(host) else original.fget(self)

    address_private.__doc__ = original.__doc__
    address_private._finetuner_loopback = True  # type: ignore[attr-defined]
    return property(address_private)


def _banner_shows_loopback() -> None:
    """Install :func:`_private_address_of` on Jina's orchestrator (the Flow's base class), once."""
    from jina.orchestrate.orchestrator import BaseOrchestrator

    current = BaseOrchestrator.__dict__["address_private"]
    if not getattr(current.fget, "_finetuner_loopback", False):
        BaseOrchestrator.address_private = _private_address_of(current)


def prepare_jina() -> None:
    """Set the environment and patches; call before building a Flow (imports jina).

    Executors bind to loopback (``JINA_DEFAULT_HOST``); only the gateway listens where the Flow's ``host`` says.
    """
    for key, value in QUIET_ENV.items():
        os.environ.setdefault(key, value)
    os.environ["JINA_OPTOUT_TELEMETRY"] = "1"
    os.environ["JINA_DISABLE_UVLOOP"] = "1"  # Jina checks that it is set, not its value
    if type(asyncio.get_event_loop_policy()).__module__.split(".")[0] == "uvloop":
        asyncio.set_event_loop_policy(None)  # asyncio's default policy again
    os.environ.setdefault("JINA_DEFAULT_HOST", LOOPBACK)
    import jina.helper
    import jina.orchestrate.orchestrator

    jina.helper.get_public_ip = _no_public_ip
    jina.orchestrate.orchestrator.get_public_ip = _no_public_ip
    _banner_shows_loopback()
    from finetuner.serving import start_watch

    start_watch.install()
