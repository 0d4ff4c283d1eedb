"""``finetuner export-flow MODEL.onnx``: write Kubernetes or docker compose configs that serve the model."""

from __future__ import annotations

import argparse
import sys

NAME = "export-flow"
HELP = "Write Kubernetes manifests or a docker compose file (Jina's exporters) that serve an exported model."


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("model", help="the .onnx file written by finetuner.export")
    target = parser.add_mutually_exclusive_group(required=True)
    target.add_argument("--kubernetes", metavar="DIR", help="write Kubernetes manifests into DIR")
    target.add_argument("--docker-compose", metavar="FILE", help="write a docker compose file")
    parser.add_argument(
        "--image", default="finetuner-embedder:latest",
        help="the Executor image built from the repository's Dockerfile (default finetuner-embedder:latest)",
    )
    parser.add_argument("--replicas", type=int, default=1, help="Executor replicas (default 1)")
    parser.add_argument("--threads", type=int, default=0, help="onnxruntime threads per replica (0: its default)")
    parser.add_argument("--port", type=int, default=12345, help="compose: gRPC port, HTTP on PORT+1 (default 12345)")
    parser.add_argument("--host", default="127.0.0.1", help="compose: host address to publish on (default 127.0.0.1)")
    parser.add_argument("--namespace", default="finetuner", help="Kubernetes namespace (default finetuner)")


def run(args: argparse.Namespace) -> int:
    from finetuner.serving.deploy import (
        DeploymentConfigError,
        build_command,
        export_docker_compose,
        export_kubernetes,
    )
    from finetuner.serving.model import ModelFileError

    try:
        if args.kubernetes:
            out = export_kubernetes(
                args.model, args.kubernetes, args.image, replicas=args.replicas, namespace=args.namespace,
                threads=args.threads,
            )
            use = f"kubectl apply -R -f {out}"
        else:
            out = export_docker_compose(
                args.model, args.docker_compose, args.image, replicas=args.replicas, port=args.port,
                host=args.host, threads=args.threads,
            )
            use = f"docker compose -f {out} up"
    except (ModelFileError, DeploymentConfigError, ValueError) as exc:
        print(f"finetuner export-flow: {exc}", file=sys.stderr)
        return 1
    print(f"wrote {out}")
    print(f"build the Executor image:  {build_command(args.model, args.image.removeprefix('docker://'))}")
    print(f"then deploy:               {use}")
    return 0
