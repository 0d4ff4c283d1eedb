"""A server port that is taken is named with the process holding it, before any server starts.

Jina answers a taken port with a bare ``PortAlreadyUsed`` traceback (``finetuner serve``) or a Flow that fails to
start (the Labeler). :func:`check_port_free` probes the port the way the server will bind it and raises
:class:`PortInUseError` naming the holder (read from ``/proc`` on Linux).
"""

from __future__ import annotations

import os
import socket
from pathlib import Path

__all__ = ["PortInUseError", "check_port_free", "port_holder"]


class PortInUseError(OSError):
    """A port a server needs is taken; the message names the process holding it when it can be found."""


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
                f"port {port} on {host} is already in use by {holder}: stop that process (an earlier server "
                "that was killed?) or pass another --port / port="
            ) from exc
