"""An Executor that is ready but never answers its health check is restarted once, then fails the Flow start.

The stall is made for real: the Executor's process replaces gRPC's health ``Check`` with one that never replies,
before Jina registers it, so the Flow's readiness checks time out exactly as they did in the rare hang seen in CI.
"""

from __future__ import annotations

import asyncio
import logging
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


class DeafForFirstStarts(Executor):
    """Counts its starts in ``marker``; for the first ``deaf_starts`` of them its server never answers."""

    def __init__(self, marker: str, deaf_starts: int, **kwargs: object) -> None:
        super().__init__(**kwargs)
        path = Path(marker)
        with path.open("a") as f:
            f.write("start\n")
        if len(path.read_text().splitlines()) <= deaf_starts:
            from grpc_health.v1 import health

            async def never_answer(self: object, request: object, context: object) -> None:
                await asyncio.sleep(3600)

            health.aio.HealthServicer.Check = never_answer

    @requests
    def echo(self, docs: DocumentArray, **kwargs: object) -> None:
        for doc in docs:
            doc.tags["seen"] = True


def _flow(marker: Path, deaf_starts: int) -> Flow:
    prepare_jina()
    return Flow().add(name="deaf", uses=DeafForFirstStarts, uses_with={"marker": str(marker), "deaf_starts": deaf_starts})


@pytest.fixture
def short_stall(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(start_watch.STALL_ENV, str(STALL_S))


def test_an_executor_silent_after_ready_is_restarted_and_the_flow_serves(
    tmp_path: Path, short_stall: None, caplog: pytest.LogCaptureFixture
) -> None:
    marker = tmp_path / "starts.txt"
    begun = time.monotonic()
    with caplog.at_level(logging.WARNING, logger="finetuner.serving"), _flow(marker, deaf_starts=1) as flow:
        waited = time.monotonic() - begun
        out = flow.post("/", inputs=DocumentArray([Document(text="hello")]), return_results=True, timeout=CALL_TIMEOUT_S)
    assert marker.read_text().splitlines() == ["start", "start"]
    assert [doc.tags.get("seen") for doc in out] == [True]
    assert "'deaf/rep-0' started but its server did not answer for 3 s; killed and started again" in caplog.text
    assert STALL_S <= waited < 120  # not Jina's 10-minute timeout_ready


def test_an_executor_silent_twice_fails_the_start_with_its_name(
    tmp_path: Path, short_stall: None, caplog: pytest.LogCaptureFixture
) -> None:
    marker = tmp_path / "starts.txt"
    begun = time.monotonic()
    with caplog.at_level(logging.WARNING, logger="finetuner.serving"), pytest.raises(RuntimeFailToStart):
        _flow(marker, deaf_starts=99).start()
    assert time.monotonic() - begun < 180
    assert marker.read_text().splitlines() == ["start", "start"]
    assert "Executor 'deaf/rep-0' started but its server did not answer for 3 s, 2 times" in caplog.text
    assert start_watch.STALL_ENV in caplog.text


def test_a_healthy_start_is_not_restarted(tmp_path: Path, short_stall: None) -> None:
    marker = tmp_path / "starts.txt"
    with _flow(marker, deaf_starts=0) as flow:
        flow.post("/", inputs=DocumentArray([Document(text="hello")]), timeout=CALL_TIMEOUT_S)
        time.sleep(STALL_S + 1)  # the watch ends with the start: a ready, idle Executor is never killed
        out = flow.post("/", inputs=DocumentArray([Document(text="again")]), return_results=True, timeout=CALL_TIMEOUT_S)
    assert marker.read_text().splitlines() == ["start"]
    assert [doc.tags.get("seen") for doc in out] == [True]


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
