"""Keep the model in the Labeler's own process for frameworks that do not survive a fork.

Jina runs the Executors in forked processes. TensorFlow (Keras) does not survive a fork once it has run
anything (its thread pools are gone in the child: the first sizeable op waits forever), and neither does an
initialised CUDA context. For such models the Labeler starts a :class:`ModelHost` in its own process: the
Executors get :class:`RemoteModel` handles and every embedding, fit, weight read/write and save runs in the
parent, on the user's model (role ``tuner``) or on clones of it (``index``, and one per ``clone_model``), over
an authenticated Unix socket (one connection per call, so any thread may call). Each connection is authenticated
on its own thread, within :data:`HANDSHAKE_SECONDS`: a peer that connects and stays silent holds nobody else.
"""

from __future__ import annotations

import os
import shutil
import socket
import struct
import sys
import tempfile
import threading
import traceback
from multiprocessing import AuthenticationError
from multiprocessing.connection import Connection, Listener, answer_challenge, deliver_challenge
from typing import Any

import numpy as np

from finetuner.labeler.remote import RemoteError, RemoteModel

__all__ = ["ModelHost", "RemoteError", "RemoteModel", "needs_host", "remote_embed_fn", "remote_train_fn"]

HANDSHAKE_SECONDS = 30.0
"""How long a peer has to answer the host's challenge (and to send its own) before it is dropped: long enough for
a caller starved of CPU by a running fit, short enough that a silent peer does not keep a thread for long."""


def needs_host(model: Any) -> bool:
    """Whether ``model`` must stay in this process: Keras (TensorFlow) and torch (autograd does not survive a
    fork once it has run, and the Flow forks its Executors), or paddle on an initialised GPU."""
    from tailor_ir.imports import framework_of

    framework = framework_of(model)
    if framework in ("keras", "torch"):
        return True
    module = sys.modules.get(framework or "")
    if framework == "paddle" and module is not None:
        return str(module.device.get_device()).startswith("gpu")
    return False


def remote_embed_fn(model: RemoteModel, contents: Any) -> np.ndarray:
    """The Executors' embed_fn for a hosted model: the host runs the Labeler's embed_fn."""
    return model.call("embed", contents)


def remote_train_fn(model: RemoteModel, session_docs: Any, epochs: int) -> dict:
    """The Executors' train_fn for a hosted model: the host runs the Labeler's train_fn on its model."""
    return model.call("train", session_docs.to_bytes(protocol="protobuf", compress="zlib"), int(epochs))


class ModelHost:
    """Serves embedding, training and weight operations on ``model`` (and clones) to the Labeler's Executors."""

    def __init__(self, model: Any, embed_fn: Any, train_fn: Any) -> None:
        self.embed_fn = embed_fn
        self.train_fn = train_fn
        self.models: dict[str, Any] = {"tuner": model}
        self._folder = tempfile.mkdtemp(prefix="ftlabel-")
        self.address = os.path.join(self._folder, "host.sock")
        self.authkey = os.urandom(32)
        # No authkey here: accept() would run the handshake on the serving thread, where a silent peer blocks
        # every other caller; each connection is authenticated on its own worker instead (_authenticated).
        self._listener = Listener(self.address, family="AF_UNIX")
        self._guard = threading.Lock()
        self._closed = False
        self._workers: set[threading.Thread] = set()  # calls in flight (a fit may run for minutes)
        self._thread = threading.Thread(target=self._serve, name="labeler-model-host", daemon=True)
        self._thread.start()

    def handle(self, role: str) -> RemoteModel:
        """A :class:`RemoteModel` for ``role`` (``tuner`` is the model itself; any other role is a clone)."""
        return RemoteModel(self.address, self.authkey, role)

    def _model(self, role: str) -> Any:
        from finetuner.labeler.training import clone_model, get_weights, set_weights

        with self._guard:
            if role not in self.models:
                original = self.models["tuner"]
                clone = clone_model(original)
                set_weights(clone, get_weights(original))
                self.models[role] = clone
            return self.models[role]

    def _run(self, op: str, role: str, args: tuple) -> Any:
        from finetuner.labeler import training

        model = self._model(role)
        if op == "embed":
            return np.asarray(self.embed_fn(model, args[0]), dtype=np.float32)
        if op == "train":
            from docarray import DocumentArray

            sessions = DocumentArray.from_bytes(args[0], protocol="protobuf", compress="zlib")
            return dict(self.train_fn(model, sessions, args[1]) or {})
        if op == "get_weights":
            return training.get_weights(model)
        if op == "set_weights":
            return training.set_weights(model, args[0])
        if op == "is_pretrained":
            return training.is_pretrained(model)
        if op == "save":
            return str(training.save_model(model, *args))
        if op == "export":
            return str(training.export_model(model, *args))
        raise ValueError(f"unknown model operation {op!r}")

    def _answer(self, conn: Any) -> None:
        with conn:
            try:
                op, role, args = conn.recv()
            except (EOFError, OSError):
                return
            try:
                if self._closed:
                    raise RuntimeError("the Labeler is closing: no more model operations")
                reply = ("ok", self._run(op, role, args))
            except Exception as exc:  # noqa: BLE001 - sent to the caller, raised there
                reply = ("error", (type(exc).__name__, str(exc), traceback.format_exc(limit=4)))
            try:
                conn.send(reply)
            except (OSError, EOFError):
                pass

    def _serve(self) -> None:
        # Back to accept() after every connection, closed or not: close() wakes it with one more connection, and
        # a loop that could leave without accepting would leave that connection (and close()) waiting.
        while True:
            try:
                conn = self._listener.accept()
            except OSError:
                if self._closed:
                    return
                continue
            if self._closed:
                conn.close()
                return
            worker = threading.Thread(target=self._answered, args=(conn,), name="model-call", daemon=True)
            worker.start()

    def _answered(self, conn: Connection) -> None:
        """Authenticate ``conn``, then answer its call as one of the calls in flight that close() waits for (a
        peer still in its handshake is not one: close() never waits on it; one that gets past it while the host
        closes is told so by :meth:`_answer`)."""
        if not self._authenticated(conn):
            conn.close()
            return
        with self._guard:
            self._workers.add(threading.current_thread())
        try:
            self._answer(conn)
        finally:
            with self._guard:
                self._workers.discard(threading.current_thread())

    def _authenticated(self, conn: Connection) -> bool:
        """The handshake ``Listener.accept`` runs with an authkey (both sides prove the key), with a deadline: a
        receive that waits past :data:`HANDSHAKE_SECONDS` fails. False for a wrong key, a hang-up or a timeout."""
        # A second handle on the same socket, to set its receive timeout (the Connection has no timeout of its own).
        with socket.socket(fileno=os.dup(conn.fileno())) as sock:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVTIMEO, _timeval(HANDSHAKE_SECONDS))
            try:
                deliver_challenge(conn, self.authkey)
                answer_challenge(conn, self.authkey)
            except (OSError, EOFError, AuthenticationError):
                return False
            finally:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVTIMEO, _timeval(0.0))
        return True

    def close(self) -> None:
        """Stop serving, wait for the calls in flight (a running fit) to finish, and remove the socket, so the
        model is no longer trained once this returns."""
        if self._closed:
            return
        self._closed = True
        self._wake_server()
        self._thread.join(timeout=5)
        self._listener.close()
        with self._guard:
            workers = list(self._workers)
        for worker in workers:
            worker.join()
        shutil.rmtree(self._folder, ignore_errors=True)

    def _wake_server(self) -> None:
        """Connect once, without the handshake, so the serving thread's accept() returns and it sees the host is
        closed. Waits at most a second: a server already gone must not hold close()."""
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as peer:
            peer.settimeout(1.0)
            try:
                peer.connect(self.address)
            except OSError:
                pass


def _timeval(seconds: float) -> bytes:
    """``seconds`` as the ``struct timeval`` that ``SO_RCVTIMEO`` takes (0: no timeout)."""
    whole = int(seconds)
    return struct.pack("ll", whole, int((seconds - whole) * 1_000_000))
