"""A handle on a model kept in the Labeler's own process (see :mod:`finetuner.labeler.host`).

Its own module so that :mod:`finetuner.labeler.training` can recognise a handle without importing the host
(which uses training): the two modules no longer import each other.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from multiprocessing.connection import Client
from typing import Any

__all__ = ["RemoteError", "RemoteModel"]


class RemoteError(RuntimeError):
    """An operation on the hosted model failed in the Labeler's process."""


@dataclass(frozen=True)
class RemoteModel:
    """A handle on a model held by a :class:`ModelHost`: ``call(op, *args)`` runs ``op`` on it there."""

    address: str
    authkey: bytes
    role: str

    def call(self, op: str, *args: Any) -> Any:
        with Client(self.address, family="AF_UNIX", authkey=self.authkey) as conn:
            conn.send((op, self.role, args))
            status, value = conn.recv()
        if status == "error":
            kind, message, trace = value
            error_class = {"ValueError": ValueError, "KeyError": KeyError, "TypeError": TypeError}.get(kind)
            if error_class is not None:
                raise error_class(message)
            raise RemoteError(f"{kind}: {message}\n(in the Labeler's process)\n{trace}")
        return value

    def clone(self) -> RemoteModel:
        """A handle on a new clone of this model, held by the same host (weights: set them)."""
        return RemoteModel(self.address, self.authkey, f"clone-{uuid.uuid4().hex[:8]}")
