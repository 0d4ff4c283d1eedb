"""Build and run a Jina Flow that serves an exported embedding model over gRPC and HTTP."""

from __future__ import annotations

import os
import signal
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any, TextIO

from finetuner.ports import check_port_free
from finetuner.serving.calibrate import check_choice
from finetuner.serving.jina_env import LOOPBACK, prepare_jina
from finetuner.serving.model import EmbeddingRuntime, check_model_file

DEFAULT_PORT = 12345
PROTOCOLS = ("grpc", "http")
EXECUTOR_NAME = "embedder"


def build_flow(
    model_path: str | os.PathLike, port: int | Sequence[int] | None = None,
    protocols: Sequence[str] = PROTOCOLS, replicas: int = 1, host: str = LOOPBACK, threads: int = 0,
    batch_size: int = 64, providers: Sequence[str] | None = None, uri_folder: str | os.PathLike | None = None,
    fetch_network: bool = False, session_choice: str = "quiet", drop_image_content: bool = False,
) -> Any:
    """A ``jina.Flow`` (not started) with one :class:`OnnxEmbedder` serving ``model_path``.

    ``port``: one port per protocol, or one base port (protocol *i* gets ``port + i``); ``None`` picks free
    ports; a taken port raises :class:`finetuner.ports.PortInUseError` naming its holder. The gateway binds to
    ``host`` (loopback unless told); the model is checked here, before any
    process starts (its metadata, then an onnxruntime session), so a missing, corrupt or refused file fails at
    once with a clear message instead of a bare ``RuntimeFailToStart`` from the Executor. Image models:
    ``uri_folder`` is the one folder a ``doc.uri`` may name files in; ``fetch_network`` allows http(s) URIs.
    ``session_choice``: onnxruntime options by name (``finetuner.serving.calibrate.SESSION_CHOICES``), or
    ``auto`` to time them in each replica at start and keep the fastest. ``drop_image_content``: replies carry
    ids and embeddings, not the images sent (a request's ``parameters`` can still choose).
    """
    path = Path(model_path).resolve()
    check_model_file(path)
    EmbeddingRuntime(path, threads=1, providers=["CPUExecutionProvider"])  # onnxruntime's own refusals, here
    protocols = [p.lower() for p in protocols]
    unknown = [p for p in protocols if p not in ("grpc", "http", "websocket")]
    if unknown or not protocols:
        raise ValueError(f"Unknown protocol(s) {unknown or protocols}; use grpc, http and/or websocket.")
    if replicas < 1:
        raise ValueError(f"replicas must be at least 1, got {replicas}.")
    if batch_size < 1 or threads < 0:
        raise ValueError(f"batch_size must be at least 1 and threads at least 0, got {batch_size} and {threads}.")
    if uri_folder is not None and not Path(uri_folder).is_dir():
        raise ValueError(f"uri_folder {uri_folder} is not a folder: give the folder whose files Documents may name.")
    prepare_jina()
    from jina import Flow
    from jina.helper import random_port

    from finetuner.serving.executor import OnnxEmbedder
    from finetuner.serving.gateway import gateway_for

    if port is None:
        ports = [int(random_port()) for _ in protocols]
    elif isinstance(port, int):
        ports = [port + i for i in range(len(protocols))]
    else:
        ports = [int(p) for p in port]
    if len(ports) != len(protocols):
        raise ValueError(f"Give one port per protocol ({protocols}), got {ports}.")
    for each in ports:  # Jina's own answer is a bare PortAlreadyUsed traceback
        if not 0 < each < 65536:
            raise ValueError(f"Ports must be between 1 and 65535, got {each}.")
        check_port_free(host, each)
    gateway = gateway_for(protocols)  # HTTP replies that are always JSON (finetuner.serving.gateway)
    flow = Flow(protocol=protocols, port=ports, host=host)
    if gateway is not None:
        flow = flow.config_gateway(uses=gateway, protocol=protocols, port=ports)
    return flow.add(
        name=EXECUTOR_NAME,
        uses=OnnxEmbedder,
        uses_with={
            "model_path": str(path), "threads": int(threads), "batch_size": int(batch_size),
            "providers": list(providers) if providers else None,
            "uri_folder": str(Path(uri_folder).resolve()) if uri_folder else None, "fetch_network": bool(fetch_network),
            "session_choice": check_choice(session_choice), "drop_image_content": bool(drop_image_content),
        },
        replicas=int(replicas),
        quiet_error=True,
    )


def endpoints(flow: Any) -> list[str]:
    """``protocol://host:port`` for each protocol the Flow's gateway serves."""
    protocols = [str(p).lower().split(".")[-1] for p in _as_list(flow.protocol)]
    ports = _as_list(flow.port)
    host = flow.host or LOOPBACK
    return [f"{proto}://{host}:{port}" for proto, port in zip(protocols, ports)]


def _as_list(value: Any) -> list[Any]:
    return list(value) if isinstance(value, list | tuple) else [value]


def _raise_keyboard_interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def serve(flow: Any, out: TextIO = sys.stdout) -> None:
    """Start the Flow, print where it listens, block until Ctrl-C or SIGTERM, then stop every process.

    Jina leaves its Executor and gateway processes running after SIGTERM to the main process, so SIGTERM is
    turned into KeyboardInterrupt, which Jina's context manager handles like Ctrl-C.
    """
    previous = signal.signal(signal.SIGTERM, _raise_keyboard_interrupt)
    try:
        with flow:
            for address in endpoints(flow):
                print(f"serving on {address}", file=out, flush=True)
            print("press Ctrl-C to stop", file=out, flush=True)
            try:
                flow.block()
            except KeyboardInterrupt:
                pass
    except KeyboardInterrupt:
        pass
    finally:
        signal.signal(signal.SIGTERM, previous)
    print("stopped", file=out, flush=True)
Flow = build_flow  # the Flow builder under the name Python users look for
