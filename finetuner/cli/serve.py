"""``finetuner serve MODEL.onnx``: serve an exported embedding model in a Jina Flow (gRPC and HTTP)."""

from __future__ import annotations

import argparse
import sys

NAME = "serve"
HELP = "Serve an exported ONNX embedding model in a Jina Flow over gRPC and HTTP (Ctrl-C stops it)."


def add_arguments(parser: argparse.ArgumentParser) -> None:
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


def run(args: argparse.Namespace) -> int:
    from finetuner.ports import PortInUseError
    from finetuner.serving.flow import build_flow, serve
    from finetuner.serving.model import ModelFileError

    try:
        flow = build_flow(
            args.model, port=args.port, protocols=args.protocol, replicas=args.replicas, host=args.host,
            threads=args.threads, batch_size=args.batch_size,
        )
    except (ModelFileError, ValueError, PortInUseError) as exc:
        print(f"finetuner serve: {exc}", file=sys.stderr)
        return 1
    serve(flow)
    return 0
