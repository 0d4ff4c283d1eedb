"""Deployment configs (Kubernetes, docker compose) for a served embedding model, written by Jina's exporters.

Jina's exporters accept only containerised Executors, so the Executor runs from the image that the
repository's ``Dockerfile`` builds; the model lives in that image under ``/models`` (added at build time with
``--build-context models=<folder of the model>``), and docker compose also mounts the host folder there.
After writing, each config is parsed and checked: Executors listen on 0.0.0.0 inside their containers, the
gateway points at the Executors' real service names and ports, and the Executors load the model from
``/models/<file name>``.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import yaml

from finetuner.serving.flow import EXECUTOR_NAME, PROTOCOLS
from finetuner.serving.jina_env import prepare_jina
from finetuner.serving.model import check_model_file

MODEL_DIR_IN_IMAGE = "/models"
DEFAULT_GATEWAY_IMAGE = "jinaai/jina:3.34.0-py311-standard"
ANY_HOST = "0.0.0.0"


class DeploymentConfigError(RuntimeError):
    """A generated deployment config would not run; the message lists each problem."""


def model_path_in_image(model_path: str | os.PathLike) -> str:
    """Where the Executor finds the model inside its container."""
    return f"{MODEL_DIR_IN_IMAGE}/{Path(model_path).name}"


def build_command(model_path: str | os.PathLike, image: str, dockerfile: str = "Dockerfile") -> str:
    """The ``docker build`` command that makes the Executor image with the model inside."""
    folder = Path(model_path).resolve().parent
    return f"docker build -f {dockerfile} --build-context models={folder} -t {image} ."


def _deployment_flow(
    model_path: str | os.PathLike, image: str, replicas: int, ports: Sequence[int], threads: int,
    volumes: list[str] | None,
) -> Any:
    check_model_file(model_path)
    if not image or any(c.isspace() for c in image):
        raise ValueError(f"Give the Executor image as name[:tag], got {image!r}.")
    prepare_jina()
    os.environ.setdefault("JINA_GATEWAY_IMAGE", DEFAULT_GATEWAY_IMAGE)
    from jina import Flow

    uses = image if image.startswith("docker://") else f"docker://{image}"
    flow = Flow(protocol=list(PROTOCOLS), port=list(ports), host=ANY_HOST)
    extra: dict[str, Any] = {"volumes": volumes} if volumes else {}
    return flow.add(
        name=EXECUTOR_NAME, uses=uses, host=ANY_HOST, replicas=int(replicas),
        uses_with={"model_path": model_path_in_image(model_path), "threads": int(threads)}, **extra,
    )


def export_kubernetes(
    model_path: str | os.PathLike, output_dir: str | os.PathLike, image: str, replicas: int = 1,
    namespace: str = "finetuner", threads: int = 0,
) -> Path:
    """Write Kubernetes manifests (one folder per Deployment) and check them; return ``output_dir``."""
    output_dir = Path(output_dir)
    flow = _deployment_flow(model_path, image, replicas, [8080, 8081], threads, volumes=None)
    flow.to_kubernetes_yaml(str(output_dir), k8s_namespace=namespace)
    problems = check_kubernetes(output_dir, model_path, image, replicas)
    if problems:
        raise DeploymentConfigError("Generated Kubernetes config is not deployable: " + "; ".join(problems))
    return output_dir


def export_docker_compose(
    model_path: str | os.PathLike, output_file: str | os.PathLike, image: str, replicas: int = 1,
    port: int = 12345, host: str = "127.0.0.1", threads: int = 0,
) -> Path:
    """Write a docker compose file and check it; the gateway is published on ``host`` (loopback by default)."""
    output_file = Path(output_file)
    folder = Path(model_path).resolve().parent
    volumes = [f"{folder}:{MODEL_DIR_IN_IMAGE}:ro"]
    flow = _deployment_flow(model_path, image, replicas, [port, port + 1], threads, volumes=volumes)
    output_file.parent.mkdir(parents=True, exist_ok=True)
    flow.to_docker_compose_yaml(str(output_file))
    _publish_on(output_file, host)
    problems = check_docker_compose(output_file, model_path, image, replicas)
    if problems:
        raise DeploymentConfigError("Generated docker compose file is not deployable: " + "; ".join(problems))
    return output_file


def _publish_on(compose_file: Path, host: str) -> None:
    """Bind the gateway's published ports to ``host`` (Jina publishes on every interface)."""
    config = yaml.safe_load(compose_file.read_text())
    gateway = config["services"]["gateway"]
    gateway["ports"] = [f"{host}:{mapping}" for mapping in gateway.get("ports", [])]
    tmp = compose_file.with_name(f".{compose_file.name}.tmp")
    tmp.write_text(yaml.safe_dump(config, sort_keys=False))
    os.replace(tmp, compose_file)


def _flag(args: Sequence[str], name: str) -> list[str]:
    """The values after ``--name`` in a command line, up to the next flag."""
    args = [str(a) for a in args]
    if name not in args:
        return []
    values = []
    for arg in args[args.index(name) + 1 :]:
        if arg.startswith("--"):
            break
        values.append(arg)
    return values


def _check_executor_args(args: Sequence[str], where: str, model_path: str | os.PathLike) -> list[str]:
    problems = []
    host = _flag(args, "--host")
    if host != [ANY_HOST]:
        problems.append(f"{where} listens on {host or 'the default host'}, not {ANY_HOST}: unreachable")
    uses_with = _flag(args, "--uses-with")
    wanted = model_path_in_image(model_path)
    got = json.loads(uses_with[0]).get("model_path") if uses_with else None
    if got != wanted:
        problems.append(f"{where} loads the model from {got!r}, expected {wanted!r}")
    if _flag(args, "--uses") != ["config.yml"]:
        problems.append(f"{where} does not use the image's config.yml")
    return problems


def _addresses(args: Sequence[str]) -> list[str]:
    value = _flag(args, "--deployments-addresses")
    return list(json.loads(value[0]).get(EXECUTOR_NAME, [])) if value else []


def check_docker_compose(
    compose_file: str | os.PathLike, model_path: str | os.PathLike, image: str, replicas: int
) -> list[str]:
    """Problems that would stop the compose deployment from serving (empty when it is fine)."""
    services = yaml.safe_load(Path(compose_file).read_text()).get("services", {})
    image = image.removeprefix("docker://")
    problems: list[str] = []
    executors = {n: s for n, s in services.items() if n.startswith(EXECUTOR_NAME)}
    if len(executors) != replicas:
        problems.append(f"{len(executors)} Executor services for {replicas} replicas")
    listening = set()
    for name, service in executors.items():
        if service.get("image") != image:
            problems.append(f"service {name} runs image {service.get('image')!r}, not {image!r}")
        problems += _check_executor_args(service.get("command", []), f"service {name}", model_path)
        mounts = [str(v) for v in service.get("volumes", [])]
        if not any(m.split(":")[1] == MODEL_DIR_IN_IMAGE for m in mounts if ":" in m):
            problems.append(f"service {name} mounts nothing at {MODEL_DIR_IN_IMAGE}")
        listening |= {f"{name}:{p}" for p in _flag(service.get("command", []), "--port")}
    gateway = services.get("gateway")
    if gateway is None:
        return [*problems, "no gateway service"]
    targets = _addresses(gateway.get("command", []))
    unknown = [t for t in targets if t not in listening]
    if not targets or unknown:
        problems.append(f"the gateway sends to {unknown or 'no Executor'}; Executors listen on {sorted(listening)}")
    gateway_ports = _flag(gateway.get("command", []), "--port")
    published = [str(p).rsplit(":", 1)[-1] for p in gateway.get("ports", [])]
    if sorted(gateway_ports) != sorted(published):
        problems.append(f"gateway listens on {gateway_ports} but publishes {published}")
    return problems


def _documents(folder: Path) -> Iterable[dict[str, Any]]:
    for path in sorted(folder.rglob("*.yml")):
        yield from (doc for doc in yaml.safe_load_all(path.read_text()) if doc)


def check_kubernetes(
    output_dir: str | os.PathLike, model_path: str | os.PathLike, image: str, replicas: int
) -> list[str]:
    """Problems that would stop the Kubernetes deployment from serving (empty when it is fine)."""
    docs = list(_documents(Path(output_dir)))
    image = image.removeprefix("docker://")
    problems: list[str] = []
    services = {(d["metadata"]["name"], d["metadata"].get("namespace")): d for d in docs if d["kind"] == "Service"}
    workloads = {d["metadata"]["name"]: d for d in docs if d["kind"] in ("Deployment", "StatefulSet")}
    executor = workloads.get(EXECUTOR_NAME)
    gateway = workloads.get("gateway")
    if executor is None or gateway is None:
        return [f"missing workload(s): found {sorted(workloads)}"]
    if executor["spec"].get("replicas") != replicas:
        problems.append(f"Executor has {executor['spec'].get('replicas')} replicas, expected {replicas}")
    container = executor["spec"]["template"]["spec"]["containers"][0]
    if container.get("image") != image:
        problems.append(f"Executor runs image {container.get('image')!r}, not {image!r}")
    problems += _check_executor_args(container.get("args", []), "the Executor", model_path)
    container_ports = {str(p["containerPort"]) for p in container.get("ports", [])}
    gateway_args = gateway["spec"]["template"]["spec"]["containers"][0].get("args", [])
    for target in _addresses(gateway_args):
        host, port = target.removeprefix("grpc://").rsplit(":", 1)
        name, namespace = (host.split(".") + [None])[:2]
        service = services.get((name, namespace))
        if service is None:
            problems.append(f"the gateway sends to {target}, but no Service {name} in namespace {namespace}")
            continue
        service_ports = {str(p["port"]) for p in service["spec"]["ports"]}
        target_ports = {str(p.get("targetPort", p["port"])) for p in service["spec"]["ports"]}
        if port not in service_ports or not target_ports <= container_ports:
            problems.append(f"the gateway sends to port {port}; Service {name} maps {service_ports} to {target_ports}")
    if not _addresses(gateway_args):
        problems.append("the gateway knows no Executor address")
    return problems
