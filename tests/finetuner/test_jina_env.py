"""``prepare_jina``: Executors never run their gRPC server on uvloop (grpc.aio supports asyncio's loop only).

A Flow started after Jina had installed uvloop's policy in the test process forked an Executor whose gRPC server
listened without accepting, and the Flow start waited forever (two full-suite runs hung that way).
"""

from __future__ import annotations

import asyncio

import pytest
import uvloop  # a dependency of jina

from finetuner.serving.jina_env import prepare_jina


def test_prepare_jina_puts_back_asyncio_and_keeps_jina_from_installing_uvloop(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("JINA_DISABLE_UVLOOP", raising=False)
    previous = asyncio.get_event_loop_policy()
    asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())  # what a Jina Client call did before any Flow
    try:
        prepare_jina()
        assert not isinstance(asyncio.get_event_loop_policy(), uvloop.EventLoopPolicy)
        from jina.helper import get_or_reuse_loop

        loop = get_or_reuse_loop()  # Jina's loop getter, which installs uvloop unless told not to
        assert not isinstance(asyncio.get_event_loop_policy(), uvloop.EventLoopPolicy)
        assert not isinstance(loop, uvloop.Loop)
    finally:
        asyncio.set_event_loop_policy(previous if not isinstance(previous, uvloop.EventLoopPolicy) else None)
