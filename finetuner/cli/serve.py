"""``finetuner serve MODEL.onnx``: serve an exported embedding model in a Jina Flow (gRPC and HTTP)."""

from __future__ import annotations

import argparse
import sys
from typing import Any

NAME = "serve"
HELP = "Serve an exported ONNX embedding model in a Jina Flow over gRPC and HTTP (Ctrl-C stops it)."


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from finetuner.serving.calibrate import AUTO, SESSION_CHOICES

    parser.add_argument("model", help="the .onnx file written by finetuner.export")
    parser.add_argument("--port", type=int, default=12345, help="gRPC port; HTTP listens on PORT+1 (default 12345)")
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1; 0.0.0.0 for all)")
    parser.add_argument("--replicas", type=int, default=1, help="Executor replicas (default 1)")
    parser.add_argument("--threads", type=int, default=0, help="onnxruntime threads per replica (0: its default)")
    parser.add_argument("--batch-size", type=int, default=64, help="largest batch sent to onnxruntime at once")
    parser.add_argument(
        "--protocol", nargs="+", default=["grpc", "http"], choices=["grpc", "http", "websocket"],
        help="protocols to serve, on consecutive ports from --port (default: grpc http)",
    )
    parser.add_argument(
        "--uri-folder", metavar="DIR", default=None,
        help="image models: the one folder whose files a Document's uri may name (default: none; only data: URIs "
        "and blobs are read). Paths are resolved, so a symlink out of DIR is refused.",
    )
    parser.add_argument(
        "--fetch-network", action="store_true",
        help="image models: let a Document's uri be an http(s) address that the server downloads (default: off)",
    )
    parser.add_argument(
        "--drop-image-content", action="store_true",
        help="image models: answer with ids and embeddings only, not the blob/tensor/data: URI each request sent "
        "(less to encode, above all over HTTP; a request's parameters={'drop_image_content': false} keeps them)",
    )
    parser.add_argument(
        "--session-choice", default="quiet", choices=[AUTO, *SESSION_CHOICES],
        help="onnxruntime session options: 'quiet' (default; idle threads sleep), 'spinning' (onnxruntime's "
        "busy-waiting threads), 'extended' (no layout rewrites), or 'auto' to time each on a sample batch at "
        "start and keep the fastest (the choice, the timings and the CPU are logged)",
    )


def flow_from_args(args: argparse.Namespace) -> Any:
    """The (unstarted) Flow the parsed ``serve`` arguments describe."""
    from finetuner.serving.flow import build_flow

    return build_flow(
        args.model, port=args.port, protocols=args.protocol, replicas=args.replicas, host=args.host,
        threads=args.threads, batch_size=args.batch_size, uri_folder=args.uri_folder,
        fetch_network=args.fetch_network, session_choice=args.session_choice,
        drop_image_content=args.drop_image_content,
    )


def run(args: argparse.Namespace) -> int:
    from finetuner.ports import PortInUseError
    from finetuner.serving.flow import serve
    from finetuner.serving.model import ModelFileError

    try:
        flow = flow_from_args(args)
    except (ModelFileError, ValueError, PortInUseError) as exc:
        print(f"finetuner serve: {exc}", file=sys.stderr)
        return 1
    serve(flow)
    return 0

