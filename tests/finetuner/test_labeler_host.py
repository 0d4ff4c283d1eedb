"""ModelHost.close() returns only when no fit is training the model any more (Finish during a background fit), and
never waits on a peer: a silent one or one with the wrong key must not hold it, stop the server or delay the other
callers."""

from __future__ import annotations

import os
import socket
import threading
import time
from multiprocessing import AuthenticationError
from multiprocessing.connection import Client, Connection, answer_challenge, deliver_challenge

import numpy as np
import pytest
import torch
from docarray import Document, DocumentArray

from finetuner.labeler import host as host_module
from finetuner.labeler.host import ModelHost, remote_embed_fn, remote_train_fn
from finetuner.labeler.training import default_embed_fn


def test_close_waits_for_the_running_fit_so_the_returned_model_is_no_longer_trained():
    torch.manual_seed(0)
    model = torch.nn.Linear(8, 4)
    steps: list[float] = []
    started = threading.Event()

    def slow_train_fn(model, session_docs, epochs):
        """Real optimiser steps, slow enough that close() arrives in the middle of the fit."""
        optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
        x = torch.as_tensor(np.stack([d.tensor for d in session_docs]))
        for _ in range(epochs):
            optimizer.zero_grad()
            model(x).pow(2).mean().backward()
            optimizer.step()
            steps.append(time.monotonic())
            started.set()
            time.sleep(0.05)
        return {"loss": 0.0}

    docs = DocumentArray(Document(tensor=np.ones(8, np.float32) * i) for i in range(4))
    host = ModelHost(model, default_embed_fn, slow_train_fn)
    result: dict = {}
    fit = threading.Thread(target=lambda: result.update(remote_train_fn(host.handle("tuner"), docs, 20)))
    fit.start()
    assert started.wait(30)
    host.close()
    closed_at = time.monotonic()
    weights = {k: v.clone() for k, v in model.state_dict().items()}
    time.sleep(0.3)
    assert steps and max(steps) < closed_at, "the model was still being trained after close() returned"
    assert len(steps) == 20 and result == {"loss": 0.0}
    for key, value in model.state_dict().items():
        assert torch.equal(value, weights[key]), key
    fit.join(timeout=10)


def _returns_within(seconds: float, function) -> bool:
    """Run ``function`` in a daemon thread: whether it returned within ``seconds`` (a hang fails, not blocks)."""
    worker = threading.Thread(target=function, daemon=True)
    worker.start()
    worker.join(seconds)
    return not worker.is_alive()


def test_close_returns_while_a_silent_peer_is_in_its_handshake():
    """close() must not wait on a handshake: a peer can be in one, or the server past its last accept() (CI once
    hung in close() that way, the serving thread gone and close()'s wake-up call waiting for an answer)."""
    model = torch.nn.Linear(8, 4)
    host = ModelHost(model, default_embed_fn, lambda *args: {})
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as silent:
        silent.connect(host.address)  # connected, never answers the challenge: its handshake thread waits on it
        time.sleep(0.2)
        assert _returns_within(20, host.close), "close() hung behind a peer that never answered the challenge"
    with pytest.raises(OSError):
        remote_embed_fn(host.handle("tuner"), np.ones((1, 8), np.float32))  # and nothing is served any more


def test_a_peer_with_the_wrong_key_is_refused_and_the_server_goes_on():
    """A failed handshake used to end the serving thread, after which every call (and close()) waited forever."""
    model = torch.nn.Linear(8, 4)
    host = ModelHost(model, default_embed_fn, lambda *args: {})
    try:
        with pytest.raises(AuthenticationError):
            Client(host.address, family="AF_UNIX", authkey=b"not the key")
        answer: list = []
        x = np.ones((2, 8), np.float32)
        assert _returns_within(20, lambda: answer.append(remote_embed_fn(host.handle("tuner"), x)))
        np.testing.assert_allclose(answer[0], default_embed_fn(model, x), atol=1e-6)
    finally:
        assert _returns_within(20, host.close)


def test_a_silent_peer_holds_no_other_caller_and_is_dropped_after_the_handshake_deadline(monkeypatch):
    """Each connection is authenticated on its own thread: a local peer that connects and never answers the
    challenge used to block every model call behind it until it left."""
    monkeypatch.setattr(host_module, "HANDSHAKE_SECONDS", 1.0)
    model = torch.nn.Linear(8, 4)
    host = ModelHost(model, default_embed_fn, lambda *args: {})
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as silent:
            silent.connect(host.address)
            silent.settimeout(20)
            challenge = silent.recv(1024)  # the host's challenge arrives at once, on the peer's own thread
            assert challenge
            answer: list = []
            x = np.ones((2, 8), np.float32)
            assert _returns_within(20, lambda: answer.append(remote_embed_fn(host.handle("tuner"), x))), (
                "a model call waited behind a peer in its handshake"
            )
            np.testing.assert_allclose(answer[0], default_embed_fn(model, x), atol=1e-6)
            started = time.monotonic()
            assert silent.recv(1024) == b"", "the silent peer was not dropped"  # the host hung up on it
            assert time.monotonic() - started < 15
    finally:
        assert _returns_within(20, host.close)


def test_a_peer_that_authenticates_while_the_host_closes_is_refused_by_name_and_not_waited_on():
    """close() does not wait on a peer in its handshake; if that peer then completes it, its call is refused with
    the reason (no model operation runs on a closed host)."""
    model = torch.nn.Linear(8, 4)
    calls: list = []
    host = ModelHost(model, lambda m, x: calls.append(x) or default_embed_fn(m, x), lambda *args: {})
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as late:
        late.connect(host.address)
        conn = Connection(os.dup(late.fileno()))  # a blocking socket, as Client() uses; poll() gives deadlines
        assert conn.poll(20), "the host sent no challenge"  # the host is waiting on this peer's answer
        assert _returns_within(20, host.close), "close() waited on a peer in its handshake"
        answer_challenge(conn, host.authkey)  # what Client() does: prove the key, then check the host's
        deliver_challenge(conn, host.authkey)
        conn.send(("embed", "tuner", (np.ones((1, 8), np.float32),)))
        assert conn.poll(20), "no answer to a call made while the host closed"
        status, (kind, message, _) = conn.recv()
        conn.close()
    assert (status, kind) == ("error", "RuntimeError") and "closing" in message
    assert calls == []
