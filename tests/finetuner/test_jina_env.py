"""``prepare_jina``: Executors never run their gRPC server on uvloop (grpc.aio supports asyncio's loop only), and a
Flow on loopback does not advertise a network address it cannot be reached at.

A Flow started after Jina had installed uvloop's policy in the test process forked an Executor whose gRPC server
listened without accepting, and the Flow start waited forever (two full-suite runs hung that way).
"""

from __future__ import annotations

import asyncio

import pytest
import uvloop  # a dependency of jina

from finetuner.serving.jina_env import is_loopback, prepare_jina


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


LAN_ADDRESS = "192.0.2.55"  # what jina.helper.get_internal_ip answers on a machine with a network (made fixed here)


@pytest.fixture
def lan_address(monkeypatch: pytest.MonkeyPatch) -> str:
    import jina.orchestrate.orchestrator

    monkeypatch.setattr(jina.orchestrate.orchestrator, "get_internal_ip", lambda: LAN_ADDRESS)
    return LAN_ADDRESS


@pytest.mark.parametrize("host", ["127.0.0.1", "localhost", "::1", "127.0.0.2"])
def test_a_flow_on_loopback_shows_its_own_host_as_its_private_address(host: str, lan_address: str) -> None:
    """Jina's start banner has a "Private" row, this machine's LAN address, where other machines would connect; a
    Flow bound to loopback cannot be reached there, so the row shows the loopback host it listens on."""
    prepare_jina()
    prepare_jina()  # a second call does not wrap the first patch again
    from jina import Flow

    assert Flow(host=host).address_private == host


@pytest.mark.parametrize("host", ["0.0.0.0", "192.0.2.7"])
def test_a_flow_on_a_network_address_keeps_jinas_private_address(host: str, lan_address: str) -> None:
    prepare_jina()
    from jina import Flow

    assert Flow(host=host).address_private == lan_address


def test_is_loopback_reads_addresses_and_names() -> None:
    assert all(map(is_loopback, ["127.0.0.1", "127.1.2.3", "::1", "[::1]", "localhost", "LOCALHOST"]))
    assert not any(map(is_loopback, ["0.0.0.0", "::", "", None, "192.0.2.7", "example.org", "10.0.0.1"]))
