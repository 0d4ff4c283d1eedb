"""The Labeler's processes live no longer than the Labeler.

Jina runs the gateway and each Executor in a child process. When ``finetuner label`` is SIGKILLed (or crashes)
nothing tells them to stop: they keep the port, keep accepting labels, and block the next start. So each child
runs :func:`die_with_parent`, a watchdog thread that ends its process as soon as it is re-parented (its parent
died). A taken port is named by :func:`finetuner.ports.check_port_free`.
"""

from __future__ import annotations

import os
import signal
import threading

__all__ = ["die_with_parent"]

POLL_S = 0.2


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
