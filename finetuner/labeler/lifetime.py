"""The Labeler's processes live no longer than the Labeler, and a taken port names who holds it.

Jina runs the gateway and each Executor in a child process. When ``finetuner label`` is SIGKILLed (or crashes)
nothing tells them to stop: they keep the port, keep accepting labels, and block the next start. So each child
runs :func:`die_with_parent`, a watchdog thread that ends its process as soon as it is re-parented (its parent
died). :func:`check_port_free` turns Jina's bare ``PortAlreadyUsed`` into an error naming the process on the
port (read from ``/proc`` on Linux).
"""

from __future__ import annotations

import os
import signal
import socket
import threading
from pathlib import Path

__all__ = ["PortInUseError", "check_port_free", "die_with_parent", "port_holder"]

POLL_S = 0.2


class PortInUseError(OSError):
    """The Labeler's port is taken; the message names the process holding it when it can be found."""


def die_with_parent(labeler_pid: int) -> None:
    """In a child process of the Labeler (pid ``labeler_pid``): end this process when its parent is gone.

    Does nothing in the Labeler's own process (an Executor built in-process, as tests do).
    """
    if os.getpid() == labeler_pid:
        return
    parent = os.getppid()

    def watch() -> None:
        while os.getppid() == parent:
            threading.Event().wait(POLL_S)
        os.kill(os.getpid(), signal.SIGKILL)  # the parent is gone: nobody will ever close us

    threading.Thread(target=watch, name="die-with-parent", daemon=True).start()


def port_holder(port: int) -> str | None:
    """``'pid 123 (python -m finetuner label ...)'`` for the process listening on TCP ``port``, or None."""
    inodes = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            lines = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            fields = line.split()
            local, state, inode = fields[1], fields[3], fields[9]
            if state == "0A" and int(local.rsplit(":", 1)[1], 16) == port:  # 0A: LISTEN
                inodes.add(f"socket:[{inode}]")
    if not inodes:
        return None
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            for fd in (proc / "fd").iterdir():
                if os.readlink(fd) in inodes:
                    cmdline = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace").strip()
                    return f"pid {proc.name} ({cmdline[:200]})"
        except OSError:
            continue
    return None


def check_port_free(host: str, port: int) -> None:
    """Raise :class:`PortInUseError` naming the holder when ``host:port`` cannot be bound."""
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as the server binds: TIME_WAIT is no holder
        try:
            probe.bind((host, port))
        except OSError as exc:
            holder = port_holder(port) or "another process (not visible to this user)"
            raise PortInUseError(
                f"port {port} on {host} is already in use by {holder}: stop that process (an earlier "
                "Labeler that was killed?) or pass another --port / port="
            ) from exc
