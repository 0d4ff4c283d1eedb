"""Serving on real Jina Flows on loopback: the real path (to_embedding -> fit -> export -> Flow) for torch,
Keras and Paddle, MiniLM text end to end, replicas, errors, SIGTERM, deployment configs.

Flows started in this module: the torch model's with two replicas (shared by most tests), one each for the
Keras and the Paddle model, the MiniLM text model's, and the CLI's.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import os
import signal
import subprocess
import sys
import threading
import time
import warnings
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

import finetuner
from finetuner.onnx_meta import EmbeddingModelMeta
from finetuner.optimize import fused_op_counts
from finetuner.serving import build_flow, check_model_file, endpoints
from finetuner.serving.deploy import (
    check_docker_compose,
    check_kubernetes,
    export_docker_compose,
    export_kubernetes,
)
from finetuner.serving.model import EmbeddingRuntime, ModelFileError
from tests.processes import CALL_TIMEOUT_S, descendants, free_port, port_bound

ROOT = Path(__file__).resolve().parents[2]
PYTHON = sys.executable
# per-Document input of each framework's small CNN: NCHW digits for torch and Paddle, NHWC RGB for Keras
SHAPES = {"torch": (1, 8, 8), "paddle": (1, 8, 8), "keras": (8, 8, 3)}


def _digits(framework: str) -> tuple[np.ndarray, np.ndarray]:
    from sklearn.datasets import load_digits

    x, y = load_digits(return_X_y=True)
    x = (x[:600] / 16.0).astype(np.float32).reshape(-1, 1, 8, 8)
    if framework == "keras":
        x = np.repeat(x.transpose(0, 2, 3, 1), 3, axis=-1)
    return x, y[:600].astype(np.int64)


def _tune_and_export(framework: str, folder: Path) -> tuple[object, Path]:
    """A zoo CNN through the public path: to_embedding, one epoch of fit on digits, export."""
    zoo = importlib.import_module(f"models.{framework}_zoo")
    general, _ = zoo.sequential_cnn(side=8) if framework == "keras" else zoo.small_cnn(in_channels=1, side=8)
    model = finetuner.tailor.to_embedding(general, output_dim=6, input_shape=SHAPES[framework])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        tuned = finetuner.fit(model, _digits(framework), epochs=1, validation="none", progress=False)
    path = finetuner.export(tuned, folder / f"{framework}.onnx")
    assert EmbeddingModelMeta.from_file(path).framework == framework
    return tuned, path


@pytest.fixture(scope="module")
def image_model(tmp_path_factory):
    """The tuned torch CNN and its export: (model, path)."""
    return _tune_and_export("torch", tmp_path_factory.mktemp("torch"))


@pytest.fixture(scope="module")
def image_flow(image_model):
    flow = build_flow(image_model[1], replicas=2, threads=1)
    with flow:
        yield flow


class _MiniLMEmbed(torch.nn.Module):
    """all-MiniLM-L6-v2 as sentence-transformers uses it: masked mean pooling, then L2 normalisation."""

    def __init__(self, bert: torch.nn.Module) -> None:
        super().__init__()
        self.bert = bert

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        hidden = self.bert(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
        mask = attention_mask.unsqueeze(-1).to(hidden.dtype)
        pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9)
        return torch.nn.functional.normalize(pooled, dim=-1)


@pytest.fixture(scope="module")
def minilm_model(tmp_path_factory):
    """MiniLM through finetuner.export with its tokenizer (fused for onnxruntime, checked against torch)."""
    from models.torch_zoo import minilm, minilm_tokenizer

    bert, sample = minilm(batch=2)
    net = _MiniLMEmbed(bert).eval()
    tokenizer = minilm_tokenizer()
    path = finetuner.export(net, tmp_path_factory.mktemp("text") / "minilm.onnx", tokenizer=tokenizer,
                            sample_input={"input_ids": sample["input_ids"], "attention_mask": sample["attention_mask"]})
    return net, tokenizer, path


def _client(flow, protocol: str, asyncio_: bool = False):
    from jina import Client

    address = next(a for a in endpoints(flow) if a.startswith(f"{protocol}://"))
    return Client(host="127.0.0.1", port=int(address.rsplit(":", 1)[1]), protocol=protocol, asyncio=asyncio_)


def _docs(tensors=None, texts=None, ids=None):
    from docarray import Document, DocumentArray

    items = tensors if tensors is not None else texts
    ids = ids or [f"doc-{i}" for i in range(len(items))]
    if tensors is not None:
        return DocumentArray([Document(id=i, tensor=t) for i, t in zip(ids, tensors)])
    return DocumentArray([Document(id=i, text=t) for i, t in zip(ids, texts)])


def _listening_sockets_of_descendants() -> dict[int, str]:
    """{port: local address} of every TCP socket in LISTEN state held by a descendant of this process."""
    import ipaddress

    pids = descendants(os.getpid())
    inodes = set()
    for pid in pids:
        try:
            inodes |= {os.readlink(fd) for fd in Path(f"/proc/{pid}/fd").iterdir()}
        except OSError:
            continue
    found = {}
    for table, width in (("/proc/net/tcp", 4), ("/proc/net/tcp6", 16)):
        for line in Path(table).read_text().splitlines()[1:]:
            fields = line.split()
            if fields[3] != "0A" or f"socket:[{fields[9]}]" not in inodes:
                continue
            address, port = fields[1].split(":")
            raw = bytes.fromhex(address)
            raw = b"".join(raw[i : i + 4][::-1] for i in range(0, len(raw), 4))  # /proc prints host-order words
            ip = ipaddress.ip_address(raw[:width])
            found[int(port, 16)] = str(getattr(ip, "ipv4_mapped", None) or ip)
    return found


def test_flow_listens_on_loopback_only(image_flow):
    """The sockets the Flow's processes really bound (gateway and Executors), not what their arguments say."""
    addresses = endpoints(image_flow)
    assert [a.split("://")[0] for a in addresses] == ["grpc", "http"]
    listening = _listening_sockets_of_descendants()
    gateway_ports = {int(a.rsplit(":", 1)[1]) for a in addresses}
    assert gateway_ports <= set(listening), (gateway_ports, listening)
    assert len(listening) > len(gateway_ports), "the Executors' own ports should be listed too"
    assert all(address in ("127.0.0.1", "::1") for address in listening.values()), listening
    assert image_flow.address_private == "127.0.0.1"  # the start banner's "Private" row, not the LAN address
    import jina.orchestrate.orchestrator

    assert jina.orchestrate.orchestrator.get_public_ip() is None


def _inputs(framework: str, n: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).random((n, *SHAPES[framework]), dtype=np.float32)


@pytest.mark.parametrize("protocol", ["grpc", "http"])
def test_served_torch_embeddings_match_the_tuned_model(image_model, image_flow, protocol):
    tuned, _ = image_model
    x = _inputs("torch", 5, seed=1)
    result = _client(image_flow, protocol).post("/encode", _docs(list(x)), timeout=CALL_TIMEOUT_S)
    assert result.embeddings.shape == (5, 6)
    np.testing.assert_allclose(result.embeddings, finetuner.embed(x, tuned), atol=1e-4, rtol=0)


@pytest.mark.parametrize("framework", ["keras", "paddle"])
def test_served_keras_and_paddle_embeddings_match_the_tuned_model(framework, tmp_path):
    tuned, path = _tune_and_export(framework, tmp_path)
    assert EmbeddingModelMeta.from_file(path).preprocess["layout"] == ("NHWC" if framework == "keras" else "NCHW")
    x = _inputs(framework, 5, seed=2)
    with build_flow(path, protocols=["grpc"], threads=1) as flow:
        result = _client(flow, "grpc").post("/encode", _docs(list(x)), timeout=CALL_TIMEOUT_S)
    assert result.embeddings.shape == (5, 6)
    np.testing.assert_allclose(result.embeddings, finetuner.embed(x, tuned), atol=1e-4, rtol=0)


def test_two_replicas_answer_concurrent_clients(image_model, image_flow):
    tuned, _ = image_model
    batches = [_inputs("torch", 4, seed=10 + i) for i in range(8)]

    async def one(x):
        async for response in _client(image_flow, "grpc", asyncio_=True).post(
            "/encode", _docs(list(x)), return_responses=True, timeout=CALL_TIMEOUT_S
        ):
            return response

    async def many():
        return await asyncio.gather(*(one(x) for x in batches))

    responses = asyncio.run(many())
    replicas = set()
    for x, response in zip(batches, responses):
        np.testing.assert_allclose(response.docs.embeddings, finetuner.embed(x, tuned), atol=1e-4, rtol=0)
        replicas |= set(response.parameters["__results__"])
    assert replicas == {"embedder/rep-0", "embedder/rep-1"}


@pytest.mark.parametrize(
    "tensor, message",
    [
        (np.zeros((3, 8, 8), np.float32), r"shape \(3, 8, 8\).*takes \(1, 8, 8\)"),
        (np.zeros((1, 8, 8), np.int64), "int64 tensor.*float32"),
        (None, "has no tensor"),
    ],
    ids=["wrong-shape", "wrong-dtype", "missing-content"],
)
def test_bad_document_fails_its_request_by_name_and_flow_keeps_serving(image_flow, tensor, message):
    import re

    from docarray import Document, DocumentArray
    from jina.excepts import BadServer

    client = _client(image_flow, "grpc")
    good = np.zeros((1, 8, 8), np.float32)
    bad = Document(id="the-bad-one") if tensor is None else Document(id="the-bad-one", tensor=tensor)
    with pytest.raises(BadServer) as info:
        client.post("/encode", DocumentArray([Document(id="fine", tensor=good), bad]), timeout=CALL_TIMEOUT_S)
    text = str(info.value)
    assert "the-bad-one" in text and "'fine'" not in text
    assert re.search(message, text), text
    after = client.post("/encode", _docs([good]), timeout=CALL_TIMEOUT_S)
    assert after.embeddings.shape == (1, 6)


@pytest.mark.parametrize(
    "protocol, value, message",
    [("grpc", np.nan, "NaN or infinite"), ("grpc", np.inf, "NaN or infinite"), ("http", np.nan, "NaN or infinite"),
     ("http", -np.inf, "NaN or infinite"), ("grpc", 1e20, "overflows"), ("http", 1e20, "overflows"),
     ("grpc", 1e300, "beyond what"), ("http", 1e300, "beyond what")],
    ids=["grpc-nan", "grpc-inf", "http-nan", "http-inf", "grpc-overflow-in-model", "http-overflow-in-model",
         "grpc-overflow-float32", "http-overflow-float32"],
)
def test_non_finite_or_overflowing_input_is_refused_by_name(image_flow, protocol, value, message):
    """NaN used to come back as NaN embeddings and 1e20 as a zero vector; NaN over HTTP got Jina's bare 500."""
    from docarray import Document, DocumentArray
    from jina.excepts import BadServer

    bad = np.full((1, 8, 8), value, np.float64 if value == 1e300 else np.float32)
    docs = DocumentArray([Document(id="a-fine-one", tensor=np.zeros((1, 8, 8), np.float32)),
                          Document(id="the-bad-one", tensor=bad)])
    with pytest.raises(BadServer) as info:
        _client(image_flow, protocol).post("/encode", docs, timeout=CALL_TIMEOUT_S)
    text = str(info.value)
    assert "the-bad-one" in text and "a-fine-one" not in text and message in text, text


def test_json_safe_reply_names_non_finite_values_and_leaves_finite_replies_alone():
    import json

    from finetuner.serving.gateway import json_safe_reply

    finite = {"header": {"status": None}, "data": [{"id": "a", "tensor": [[1e308, 1e308], [0.0, -1.0]]}]}
    assert json_safe_reply(finite) is finite  # its sum overflows, its values do not
    failed = {"header": {"status": {"code": 1, "description": "Document 'b' has NaN"}},
              "data": [{"id": "a", "tensor": [1.0]}, {"id": "b", "tensor": [[1.0, float("nan")]]}]}
    safe = json_safe_reply(failed)
    assert safe["header"]["status"]["description"] == "Document 'b' has NaN"  # the Executor's message stays
    assert safe["data"][1]["tensor"] == [[1.0, None]] and json.dumps(safe, allow_nan=False)
    ok = {"header": {"status": None}, "data": [{"id": "c", "embedding": [0.5], "chunks": [{"tensor": [float("inf")]}]}]}
    status = json_safe_reply(ok)["header"]["status"]
    assert status["code"] == 1 and "Document 'c'" in status["description"] and "chunks.tensor" in status["description"]


def _post_json(flow, body: str) -> tuple[int, str]:
    """POST ``body`` to the Flow's HTTP ``/post`` as curl would; (status code, response text)."""
    import urllib.error
    import urllib.request

    address = next(a for a in endpoints(flow) if a.startswith("http://"))
    request = urllib.request.Request(f"{address}/post", body.encode(), {"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode()


@pytest.mark.parametrize("token", ["NaN", "Infinity", "-Infinity"])
def test_non_finite_json_over_http_is_named_in_a_json_reply(image_flow, token):
    """Raw JSON with a NaN/Infinity token (Python's JSON reader takes them): the reply used to be Jina's bare
    ``500 Internal Server Error``, because the error reply echoes the request and NaN is not JSON. Now it is
    JSON, its status names the bad Document only, and the Flow goes on answering."""
    import json

    row = ", ".join(["0.5"] * 8)
    fine = "[[" + ", ".join([f"[{row}]"] * 8) + "]]"
    bad = fine.replace("0.5", token, 1)
    code, text = _post_json(
        image_flow, f'{{"execEndpoint": "/encode", "data": [{{"id": "fine", "tensor": {fine}}}, '
                    f'{{"id": "the-bad-one", "tensor": {bad}}}]}}'
    )
    assert code == 200, (code, text)
    status = json.loads(text)["header"]["status"]  # strict JSON: no NaN token came back
    assert "Infinity" not in text and "NaN or infinite" in status["description"]
    assert "the-bad-one" in status["description"] and "'fine'" not in status["description"]
    code, text = _post_json(image_flow, f'{{"execEndpoint": "/encode", "data": [{{"id": "fine", "tensor": {fine}}}]}}')
    assert code == 200 and len(json.loads(text)["data"][0]["embedding"]) == 6


def test_non_finite_values_the_model_ignores_fail_an_http_request_by_name(image_flow):
    """A Document the model embeds, carrying a chunk with a NaN tensor: gRPC echoes it as sent, but JSON cannot, so
    over HTTP the request fails naming the Document and field (it was a bare 500; nulls would silently replace
    what the client sent)."""
    from docarray import Document, DocumentArray
    from jina.excepts import BadServer

    def docs():
        nan_chunk = Document(id="chunk", tensor=np.full((2,), np.nan, np.float32))
        return DocumentArray([Document(id="a-good-one", tensor=np.zeros((1, 8, 8), np.float32)),
                              Document(id="the-parent", tensor=np.zeros((1, 8, 8), np.float32), chunks=[nan_chunk])])

    grpc = _client(image_flow, "grpc").post("/encode", docs(), timeout=CALL_TIMEOUT_S)
    assert grpc.embeddings.shape == (2, 6) and np.isnan(grpc[1].chunks[0].tensor).all()
    with pytest.raises(BadServer) as info:
        _client(image_flow, "http").post("/encode", docs(), timeout=CALL_TIMEOUT_S)
    text = str(info.value)
    assert "the-parent" in text and "chunks.tensor" in text and "a-good-one" not in text, text


def test_websocket_json_clients_get_strict_json_naming_the_document(image_model):
    """A WebSocket client that names no subprotocol (a browser's) talks JSON: the reply to a NaN tensor used to
    carry ``NaN`` tokens that strict JSON readers (JavaScript's ``JSON.parse``) refuse."""
    import json

    import aiohttp

    def strict(text: str) -> dict:
        return json.loads(text, parse_constant=lambda token: pytest.fail(f"{token} in the reply"))

    async def exchange(address: str, tensor: list) -> dict:
        timeout = aiohttp.ClientTimeout(total=120)  # a lost reply fails the test instead of hanging the suite
        async with aiohttp.ClientSession(timeout=timeout) as session, session.ws_connect(address) as ws:
            await ws.send_str(json.dumps({"execEndpoint": "/encode", "data": [{"id": "the-bad-one", "tensor": tensor}]}))
            reply = strict((await ws.receive(timeout=120)).data)
            await ws.send_str("{}")  # the end of this client's requests
            return reply

    tensor = np.full((1, 8, 8), 0.5).tolist()
    # through the command line, as users start a WebSocket server
    with cli_served(image_model[1], "websocket") as (proc, seen):
        address = f"ws://127.0.0.1:{proc.port}"
        tensor[0][0][0] = float("nan")
        status = asyncio.run(exchange(address, tensor))["header"]["status"]
        assert "the-bad-one" in status["description"] and "NaN or infinite" in status["description"]
        tensor[0][0][0] = 0.5
        assert len(asyncio.run(exchange(address, tensor))["data"][0]["embedding"]) == 6


def test_text_documents_with_minilm_end_to_end(minilm_model):
    net, tokenizer, path = minilm_model
    texts = ["a photo of a cat sitting on a mat", "neural search", "the quick brown fox jumps over the lazy dog " * 40]
    encoded = tokenizer(texts, padding=True, truncation=True, max_length=256, return_tensors="pt")  # max_seq_length
    with torch.inference_mode():
        expected = net(encoded["input_ids"], encoded["attention_mask"]).numpy()
    assert fused_op_counts(check_model_file(path)[0]).get("Attention") == 6  # export fused every layer
    with build_flow(path, threads=2) as flow:
        for protocol in ("grpc", "http"):
            result = _client(flow, protocol).post("/encode", _docs(texts=texts), timeout=CALL_TIMEOUT_S)
            assert result.embeddings.shape == (3, 384)
            np.testing.assert_allclose(result.embeddings, expected, atol=1e-4)
        np.testing.assert_allclose(np.linalg.norm(result.embeddings, axis=1), 1.0, atol=1e-5)


def test_missing_or_corrupt_model_fails_at_start_with_a_clear_message(tmp_path, image_model):
    with pytest.raises(ModelFileError, match="does not exist"):
        build_flow(tmp_path / "missing.onnx")
    corrupt = tmp_path / "corrupt.onnx"
    corrupt.write_bytes(image_model[1].read_bytes()[:1000])
    with pytest.raises(ModelFileError, match="corrupt"):
        check_model_file(corrupt)
    with pytest.raises(ModelFileError, match="corrupt"):
        EmbeddingRuntime(corrupt)  # what the Executor runs, when started by other means
    run = subprocess.run([PYTHON, "-m", "finetuner", "serve", str(corrupt)], capture_output=True, text=True,
                         cwd=ROOT, timeout=120)
    assert run.returncode == 1 and "corrupt.onnx" in run.stderr and "export it again" in run.stderr


def test_serve_of_a_model_onnxruntime_refuses_reports_its_reason_before_any_flow(tmp_path, image_model):
    """An external-data path that escapes the model's folder: onnxruntime refuses it, and that reason is shown
    (it used to surface as a bare RuntimeFailToStart from the Executor process)."""
    import onnx

    model = onnx.load(str(image_model[1]))
    tensor = max(model.graph.initializer, key=lambda t: len(t.raw_data))
    (tmp_path / "outside.bin").write_bytes(tensor.raw_data)
    tensor.ClearField("raw_data")
    tensor.data_location = onnx.TensorProto.EXTERNAL
    tensor.external_data.add(key="location", value="../outside.bin")
    folder = tmp_path / "model"
    folder.mkdir()
    onnx.save(model, str(folder / "escapes.onnx"))
    with pytest.raises(ModelFileError, match="onnxruntime cannot load"):
        build_flow(folder / "escapes.onnx")
    started = time.monotonic()
    run = subprocess.run([PYTHON, "-m", "finetuner", "serve", str(folder / "escapes.onnx")], capture_output=True,
                         text=True, cwd=ROOT, timeout=120)
    assert run.returncode == 1 and "escapes.onnx" in run.stderr and "onnxruntime cannot load" in run.stderr
    assert "RuntimeFailToStart" not in run.stderr and "Traceback" not in run.stderr
    assert time.monotonic() - started < 60


def test_a_taken_port_or_a_bad_setting_is_refused_before_any_process_starts(image_model):
    """``finetuner serve`` on a taken port used to die with Jina's bare ``PortAlreadyUsed`` traceback, and
    ``--batch-size 0`` started a Flow that failed every request."""
    import socket

    from finetuner.ports import PortInUseError

    for bad in ({"batch_size": 0}, {"threads": -1}, {"port": 70000}, {"replicas": 0}):
        with pytest.raises(ValueError, match="must be"):
            build_flow(image_model[1], **{"protocols": ["grpc"], **bad})
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        port = holder.getsockname()[1]
        with pytest.raises(PortInUseError, match=f"port {port} on 127.0.0.1 is already in use by pid {os.getpid()}"):
            build_flow(image_model[1], port=[free_port(), port])
        run = subprocess.run([PYTHON, "-m", "finetuner", "serve", str(image_model[1]), "--port", str(port)],
                             capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert run.returncode == 1 and f"already in use by pid {os.getpid()}" in run.stderr, run.stderr
    assert "Traceback" not in run.stderr


@contextlib.contextmanager
def cli_served(model: Path, protocol: str) -> Iterator[tuple[subprocess.Popen, list[str]]]:
    """``finetuner serve MODEL --protocol PROTOCOL`` on a free port, once it printed where it serves; killed after.

    Yields the process (``proc.port`` its port) and the lines it printed so far."""
    port = free_port()
    proc = subprocess.Popen(
        [PYTHON, "-m", "finetuner", "serve", str(model), "--port", str(port), "--protocol", protocol],
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )
    proc.port = port  # type: ignore[attr-defined]
    try:
        seen: list[str] = []

        def read_until_serving() -> None:
            for line in iter(proc.stdout.readline, ""):
                seen.append(line)
                if "serving on" in line:
                    return

        # On a thread, so a server that stays silent fails the test at the deadline instead of blocking it in
        # readline(); what it read after that line stays in proc.stdout's buffer for the test to read.
        reader = threading.Thread(target=read_until_serving, daemon=True)
        reader.start()
        reader.join(120)
        assert f"serving on {protocol}://127.0.0.1:{port}\n" in seen, "".join(seen)
        yield proc, seen
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)  # it stops its Flow's processes (SIGKILL would orphan them)
            try:
                proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=60)


def test_cli_serve_prints_addresses_answers_and_stops_on_sigterm(image_model):
    from jina import Client

    with cli_served(image_model[1], "grpc") as (proc, _):
        result = Client(host="127.0.0.1", port=proc.port, protocol="grpc").post(
            "/", _docs([np.zeros((1, 8, 8), np.float32)]), timeout=CALL_TIMEOUT_S
        )
        assert result.embeddings.shape == (1, 6)
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=60)
    assert proc.returncode == 0
    assert "stopped" in proc.stdout.read()
    assert not port_bound(proc.port)


def test_kubernetes_config_is_deployable(tmp_path, image_model):
    out = export_kubernetes(image_model[1], tmp_path / "k8s", "registry.local/embedder:1", replicas=2)
    docs = [d for f in sorted(out.rglob("*.yml")) for d in yaml.safe_load_all(f.read_text()) if d]
    executor = next(d for d in docs if d["kind"] in ("Deployment", "StatefulSet") and d["metadata"]["name"] == "embedder")
    args = executor["spec"]["template"]["spec"]["containers"][0]["args"]
    assert args[args.index("--host") + 1] == "0.0.0.0"
    assert '"/models/torch.onnx"' in args[args.index("--uses-with") + 1]
    assert check_kubernetes(out, image_model[1], "registry.local/embedder:1", 2) == []
    # the checker catches a config that would not serve
    executor_file = out / "embedder" / "embedder.yml"
    executor_file.write_text(executor_file.read_text().replace("- 0.0.0.0", "- 127.0.0.1"))
    assert any("unreachable" in p for p in check_kubernetes(out, image_model[1], "registry.local/embedder:1", 2))


def test_docker_compose_config_is_deployable(tmp_path, image_model):
    out = export_docker_compose(image_model[1], tmp_path / "compose.yml", "embedder:1", replicas=2, port=23456)
    services = yaml.safe_load(out.read_text())["services"]
    assert sorted(services) == ["embedder-rep-0", "embedder-rep-1", "gateway"]
    assert services["gateway"]["ports"] == ["127.0.0.1:23456:23456", "127.0.0.1:23457:23457"]
    assert f"{image_model[1].parent}:/models:ro" in services["embedder-rep-0"]["volumes"]
    assert check_docker_compose(out, image_model[1], "embedder:1", 2) == []
    assert check_docker_compose(out, tmp_path / "other.onnx", "embedder:1", 2)  # wrong model path is caught


def test_dockerfile_runs_the_executor_config():
    dockerfile = (ROOT / "Dockerfile").read_text()
    config = yaml.safe_load((ROOT / "finetuner/serving/config.yml").read_text())
    assert config["jtype"] == "OnnxEmbedder"
    assert (ROOT / config["py_modules"][0]).is_file()
    assert "COPY finetuner/serving/config.yml config.yml" in dockerfile and "/models/" in dockerfile
    assert "onnxruntime==" in dockerfile and "torch" not in dockerfile
