"""An Executor that is ready but never answers its health check, or whose process is killed before it is ready, is
restarted once, then fails the Flow start.

The stall is made for real: the Executor's process replaces gRPC's health ``Check`` with one that never replies,
before Jina registers it, so the Flow's readiness checks time out exactly as they did in the rare hang seen in CI.
The death is real too: the Executor's process sends itself SIGKILL while it loads, as a crash in native code ends
it, without a word to the Flow.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import time
from pathlib import Path

import pytest
from docarray import Document, DocumentArray
from jina import Executor, Flow, requests
from jina.excepts import RuntimeFailToStart

from finetuner.serving import start_watch
from finetuner.serving.jina_env import prepare_jina
from tests.processes import CALL_TIMEOUT_S

STALL_S = 3


class MisbehavesOnFirstStarts(Executor):
    """Counts its starts in ``marker``; the first ``bad_starts`` of them call :meth:`misbehave` while loading."""

    def __init__(self, marker: str, bad_starts: int, **kwargs: object) -> None:
        super().__init__(**kwargs)
        path = Path(marker)
        with path.open("a") as f:
            f.write("start\n")
        if len(path.read_text().splitlines()) <= bad_starts:
            self.misbehave()

    def misbehave(self) -> None:
        raise NotImplementedError

    @requests
    def echo(self, docs: DocumentArray, **kwargs: object) -> None:
        for doc in docs:
            doc.tags["seen"] = True


class DeafForFirstStarts(MisbehavesOnFirstStarts):
    """Its server never answers a health check."""

    def misbehave(self) -> None:
        from grpc_health.v1 import health

        async def never_answer(self: object, request: object, context: object) -> None:
            await asyncio.sleep(3600)

        health.aio.HealthServicer.Check = never_answer


class DiesOnFirstStarts(MisbehavesOnFirstStarts):
    """Its process is killed (SIGKILL) before it is ready, as a native crash would end it."""

    def misbehave(self) -> None:
        os.kill(os.getpid(), signal.SIGKILL)


def _flow(marker: Path, kind: str, bad_starts: int) -> Flow:
    """A Flow of one Executor of ``kind`` (:data:`KINDS`). For a dying one Jina alone would wait for the dead process
    until ``timeout_ready``: 60 s here (10 minutes by default)."""
    prepare_jina()
    executor, _, _, _ = KINDS[kind]
    timeout = {"timeout_ready": 60_000} if kind == "dies" else {}
    return Flow().add(name=kind, uses=executor, uses_with={"marker": str(marker), "bad_starts": bad_starts}, **timeout)


# kind: (Executor, the warning on its restart, the error when it fails twice, seconds within which either comes)
KINDS = {
    "deaf": (
        DeafForFirstStarts,
        "'deaf/rep-0' started but its server did not answer for 3 s; killed and started again",
        f"Executor 'deaf/rep-0' started but its server did not answer for 3 s, 2 times; the Flow start fails. Start it "
        f"again; on a slow or busy machine raise {start_watch.STALL_ENV}",
        120,  # not Jina's 10-minute timeout_ready
    ),
    "dies": (
        DiesOnFirstStarts,
        "'dies/rep-0' exited before it was ready (killed by SIGKILL); started again",
        "Executor 'dies/rep-0' exited before it was ready (killed by SIGKILL), 2 times; the Flow start fails. Start "
        "it again.",
        50,  # well within the 60 s timeout_ready that Jina alone would wait out
    ),
}


@pytest.fixture
def short_stall(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(start_watch.STALL_ENV, str(STALL_S))


@pytest.mark.parametrize("kind", list(KINDS))
def test_an_executor_that_fails_its_first_start_is_started_again_and_the_flow_serves(
    tmp_path: Path, short_stall: None, caplog: pytest.LogCaptureFixture, kind: str
) -> None:
    _, warning, _, within_s = KINDS[kind]
    marker = tmp_path / "starts.txt"
    begun = time.monotonic()
    with caplog.at_level(logging.WARNING, logger="finetuner.serving"), _flow(marker, kind, bad_starts=1) as flow:
        waited = time.monotonic() - begun
        out = flow.post("/", inputs=DocumentArray([Document(text="hello")]), return_results=True, timeout=CALL_TIMEOUT_S)
    assert marker.read_text().splitlines() == ["start", "start"]
    assert [doc.tags.get("seen") for doc in out] == [True]
    assert warning in caplog.text
    assert waited < within_s
    if kind == "deaf":
        assert waited >= STALL_S


@pytest.mark.parametrize("kind", list(KINDS))
def test_an_executor_that_fails_twice_fails_the_start_with_its_name(
    tmp_path: Path, short_stall: None, caplog: pytest.LogCaptureFixture, kind: str
) -> None:
    _, _, error, within_s = KINDS[kind]
    marker = tmp_path / "starts.txt"
    begun = time.monotonic()
    with caplog.at_level(logging.WARNING, logger="finetuner.serving"), pytest.raises(RuntimeFailToStart):
        _flow(marker, kind, bad_starts=99).start()
    assert time.monotonic() - begun < within_s
    assert marker.read_text().splitlines() == ["start", "start"]
    assert error in caplog.text


def test_a_healthy_start_is_not_restarted(tmp_path: Path, short_stall: None) -> None:
    marker = tmp_path / "starts.txt"
    with _flow(marker, "deaf", bad_starts=0) as flow:
        flow.post("/", inputs=DocumentArray([Document(text="hello")]), timeout=CALL_TIMEOUT_S)
        time.sleep(STALL_S + 1)  # the watch ends with the start: a ready, idle Executor is never killed
        out = flow.post("/", inputs=DocumentArray([Document(text="again")]), return_results=True, timeout=CALL_TIMEOUT_S)
    assert marker.read_text().splitlines() == ["start"]
    assert [doc.tags.get("seen") for doc in out] == [True]


def test_exits_are_described_by_signal_name_or_code() -> None:
    assert start_watch.describe_exit(-signal.SIGSEGV) == "killed by SIGSEGV"
    assert start_watch.describe_exit(-200) == "killed by signal 200"
    assert start_watch.describe_exit(3) == "exit code 3"


@pytest.mark.parametrize("raw", ["soon", "0", "-5"])
def test_a_bad_stall_setting_is_named(monkeypatch: pytest.MonkeyPatch, raw: str) -> None:
    monkeypatch.setenv(start_watch.STALL_ENV, raw)
    with pytest.raises(ValueError, match=start_watch.STALL_ENV):
        start_watch.stall_seconds()


def test_install_is_idempotent() -> None:
    from jina.orchestrate.pods import BasePod

    prepare_jina()
    first = BasePod.async_wait_start_success
    start_watch.install()
    assert BasePod.async_wait_start_success is first
    assert first.finetuner_watched
