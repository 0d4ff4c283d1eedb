"""Ports and processes, read from real sockets and /proc: how tests show that servers bind, answer and go away.

One copy for every test module that starts servers (serving, the Labeler, distributed launchers).
"""

from __future__ import annotations

import socket
from pathlib import Path

LOOPBACK = "127.0.0.1"
CALL_TIMEOUT_S = 120
"""Deadline for one call to a test server (a Jina Client or Flow post): a stuck server fails its test, not CI."""


def free_port() -> int:
    """A TCP port on loopback that nothing listens on right now (the OS picks it)."""
    with socket.socket() as sock:
        sock.bind((LOOPBACK, 0))
        return sock.getsockname()[1]


def port_bound(port: int) -> bool:
    """Whether something accepts TCP connections on ``127.0.0.1:port``."""
    with socket.socket() as sock:
        return sock.connect_ex((LOOPBACK, port)) == 0


def descendants(pid: int) -> set[int]:
    """Every live descendant of ``pid`` (children, grandchildren, ...), from /proc."""
    children: dict[int, list[int]] = {}
    for proc in Path("/proc").iterdir():
        if proc.name.isdigit():
            try:
                ppid = int((proc / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            children.setdefault(ppid, []).append(int(proc.name))
    found, todo = set(), [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            found.add(child)
            todo.append(child)
    return found
