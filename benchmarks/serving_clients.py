"""The serving benchmark's client-shaped sections (``serving.py --models images texts``).

images: 224 px JPEGs sent as bytes (``doc.blob``) over gRPC and HTTP to a Flow serving resnet18 with the
ImageNet preprocessing recorded at export, against the same images as tensors in JSON over HTTP, and against
onnxruntime on already preprocessed tensors in this process.
texts: sentences of the standard library's docstrings (their real length distribution), batch 32, through the
Flow against sentence-transformers' ``encode`` (torch backend) on the same all-MiniLM-L6-v2, same threads.
"""

from __future__ import annotations

import importlib
import inspect
import io
import re
import subprocess
from pathlib import Path

import numpy as np
from _common import median_seconds

BATCH = 32
IMAGENET_MEAN, IMAGENET_STD = [0.485, 0.456, 0.406], [0.229, 0.224, 0.225]


def cpu_name() -> str:
    """The CPU as ``lscpu`` names it, with the vector extensions that decide the kernels."""
    info = dict(
        line.split(":", 1) for line in subprocess.run(["lscpu"], capture_output=True, text=True).stdout.splitlines()
        if ":" in line
    )
    flags = set(info.get("Flags", "").split())
    vector = "AVX-512" if "avx512f" in flags else "AVX2" if "avx2" in flags else "SSE"
    vnni = "/VNNI" if flags & {"avx512_vnni", "avx_vnni"} else ""
    return f"{info.get('Model name', '?').strip()} ({info.get('CPU(s)', '?').strip()} CPUs, {vector}{vnni})"


def jpegs(n: int, side: int = 224, seed: int = 0) -> list[bytes]:
    """``side`` x ``side`` JPEGs (quality 90): random crops of the two photos scikit-learn ships."""
    from PIL import Image
    from sklearn.datasets import load_sample_image

    photos = [load_sample_image("china.jpg"), load_sample_image("flower.jpg")]
    rng = np.random.default_rng(seed)
    out = []
    for i in range(n):
        photo = photos[i % 2]
        size = int(rng.integers(side, photo.shape[0]))
        top, left = (int(rng.integers(0, photo.shape[j] - size + 1)) for j in (0, 1))
        image = Image.fromarray(photo[top : top + size, left : left + size]).resize((side, side), Image.BILINEAR)
        buffer = io.BytesIO()
        image.save(buffer, "JPEG", quality=90)
        out.append(buffer.getvalue())
    return out


def docstring_sentences(n: int, seed: int = 0) -> list[str]:
    """``n`` sentences of this Python's standard-library docstrings, drawn at random: real, varied lengths."""
    names = ("os", "json", "logging", "pathlib", "subprocess", "email", "asyncio", "collections", "argparse",
             "itertools", "functools", "re", "socket", "threading", "shutil", "tarfile", "zipfile", "datetime")
    text = " ".join(inspect.getdoc(obj) or "" for name in names for obj in vars(importlib.import_module(name)).values()
                    if callable(obj))
    sentences = sorted({" ".join(s.split()) for s in re.split(r"(?<=[.!?])\s+", text) if len(s.split()) >= 2})
    return [sentences[i] for i in np.random.default_rng(seed).choice(len(sentences), n, replace=False)]


def _flow_rows(results: dict, model: str, runner: str, batch: int, notes: dict | None = None) -> list[dict]:
    rows = []
    for protocol, (rps, lats) in results.items():
        note = (notes or {}).get(protocol, "")
        lats_ms = np.array(lats) * 1e3
        rows.append({"model": model, "batch": batch, "runner": runner, "protocol": protocol, "replicas": 1,
                     "items_per_s": round(rps * batch, 2), "p50_ms": round(float(np.percentile(lats_ms, 50)), 2),
                     "p99_ms": round(float(np.percentile(lats_ms, 99)), 2),
                     "note": f"{len(lats)} requests" + (f"; {note}" if note else "")})
    return rows


def _row(model: str, runner: str, batch: int, seconds: float, note: str = "") -> dict:
    return {"model": model, "batch": batch, "runner": runner, "protocol": "-", "replicas": "-",
            "items_per_s": round(batch / seconds, 2), "p50_ms": round(seconds * 1e3, 2), "p99_ms": "", "note": note}


def _post(flow, protocol: str, docs):  # noqa: ANN001, ANN202
    from jina import Client

    from finetuner.serving import endpoints

    address = next(a for a in endpoints(flow) if a.startswith(f"{protocol}://"))
    return Client(host="127.0.0.1", port=int(address.rsplit(":", 1)[1]), protocol=protocol).post("/encode", docs)


def bench_images(args, folder: Path, seconds: float, rounds: int, repeat: int) -> tuple[list[dict], list[str]]:  # noqa: ANN001
    import torch
    from docarray import Document, DocumentArray
    from PIL import Image
    from serving import interleaved, load_flow, ort_session
    from torchvision import transforms as T

    import finetuner
    from finetuner.serving import build_flow
    from finetuner.serving.images import decode_image
    from finetuner.serving.model import EmbeddingRuntime
    from models.torch_zoo import resnet18

    net, _ = resnet18(batch=2, side=224)
    net.fc = torch.nn.Identity()
    net.eval()
    transform = T.Compose([T.Resize(256), T.CenterCrop(224), T.ToTensor(), T.Normalize(IMAGENET_MEAN, IMAGENET_STD)])
    path = finetuner.export(net, folder / "resnet18_images.onnx", input_shape=(3, 224, 224),
                            image_preprocessing=transform)
    images = jpegs(2 * BATCH)
    batch = images[:BATCH]
    runtime = EmbeddingRuntime(path, threads=args.threads, batch_size=BATCH)
    spec = runtime.image_preprocessing
    tensors = np.stack([spec.apply(decode_image(b)) for b in batch])
    session = ort_session(path, args.threads)
    feed = {runtime.inputs[0].name: tensors}

    def blob_docs():  # noqa: ANN202
        return DocumentArray([Document(blob=b) for b in batch])

    secs = interleaved({
        "onnxruntime on preprocessed tensors": lambda: session.run(None, feed),
        "EmbeddingRuntime on JPEG bytes (decode + preprocess + onnxruntime)": lambda: runtime.embed_documents(blob_docs()),
    }, rounds, repeat)
    decode_s = median_seconds(lambda: [spec.apply(decode_image(b)) for b in batch], repeat=3)
    rows = [_row("resnet18 jpeg", name, BATCH, s) for name, s in secs.items()]
    rows.append(_row("resnet18 jpeg", "decode + preprocess only (Pillow + numpy, 1 thread)", BATCH, decode_s))
    with build_flow(path, threads=args.threads, batch_size=BATCH) as flow:
        served = _post(flow, "grpc", blob_docs()).embeddings
        bytes_results = load_flow(flow, blob_docs, seconds, args.concurrency, 2 * args.concurrency)
        dropped_results = load_flow(flow, blob_docs, seconds, args.concurrency, 2 * args.concurrency,
                                    parameters={"drop_image_content": True})
        tensor_results = load_flow(flow, lambda: DocumentArray([Document(tensor=tensors[0])]), seconds,
                                   args.concurrency, 2 * args.concurrency, heavy_http=True)
    expected = finetuner.embed(np.stack([transform(Image.open(io.BytesIO(b)).convert("RGB")).numpy() for b in batch]),
                               net)
    rows += _flow_rows(bytes_results, "resnet18 jpeg", "flow, JPEG bytes (doc.blob)", BATCH)
    rows += _flow_rows(dropped_results, "resnet18 jpeg", "flow, JPEG bytes, drop_image_content", BATCH,
                       {p: "reply: ids and embeddings only" for p in ("grpc", "http")})
    rows += _flow_rows(tensor_results, "resnet18 jpeg", "flow, tensor (3x224x224 float32)", 1, {"http": "as JSON"})
    http_bytes = bytes_results["http"][0] * BATCH
    http_tensor = tensor_results["http"][0]
    grpc_bytes = bytes_results["grpc"][0] * BATCH
    http_dropped, grpc_dropped = (dropped_results[p][0] * BATCH for p in ("http", "grpc"))
    ort = BATCH / secs["onnxruntime on preprocessed tensors"]
    kb = np.mean([len(b) for b in batch]) / 1024
    notes = [
        f"images: {BATCH} JPEGs of 224x224 px ({kb:.0f} KB each on average), ImageNet preprocessing recorded at export "
        "(Resize 256, CenterCrop 224, ToTensor, Normalize) and applied by the Executor",
        f"images: served embeddings of JPEG bytes vs finetuner.embed on the torchvision-preprocessed images: max abs "
        f"diff {float(np.abs(served - expected).max()):.1e}",
        f"images: HTTP JPEG bytes {http_bytes:.1f} images/s vs HTTP tensor-as-JSON {http_tensor:.2f} images/s = "
        f"{http_bytes / http_tensor:.0f}x (target >= 10x)",
        f"images: Flow gRPC JPEG bytes {grpc_bytes:.1f} images/s vs onnxruntime on preprocessed tensors in process "
        f"{ort:.1f} images/s = {grpc_bytes / ort:.2f}x (targets >= 0.7x with decoding, >= 0.8x); HTTP bytes "
        f"{http_bytes / ort:.2f}x; decoding + preprocessing alone takes {decode_s / BATCH * 1e3:.1f} ms per image",
        f"images: with parameters={{'drop_image_content': True}} (the reply carries ids and embeddings, not the JPEGs "
        f"back): HTTP {http_dropped:.1f} images/s = {http_dropped / ort:.2f}x onnxruntime ({http_dropped / http_bytes:.2f}x "
        f"HTTP with the JPEGs echoed), gRPC {grpc_dropped:.1f} images/s = {grpc_dropped / ort:.2f}x",
    ]
    return rows, notes


def bench_texts(args, folder: Path, seconds: float, rounds: int, repeat: int) -> tuple[list[dict], list[str]]:  # noqa: ANN001
    import onnx
    import torch
    from docarray import Document, DocumentArray
    from sentence_transformers import SentenceTransformer
    from serving import MiniLMEmbed, interleaved, load_flow, paraphrase_set, recall_at_10

    import finetuner
    from finetuner.optimize import optimize_file
    from finetuner.precision import choose_precision
    from finetuner.serving import build_flow
    from finetuner.serving.model import EmbeddingRuntime
    from models.torch_zoo import minilm_path, minilm_tokenizer

    torch.set_num_threads(args.threads)
    traced, sample = MiniLMEmbed.build("eager")
    path = finetuner.export(traced, folder / "minilm_texts.onnx", tokenizer=minilm_tokenizer(),
                            sample_input={"input_ids": sample["input_ids"], "attention_mask": sample["attention_mask"]})
    int8 = optimize_file(path, folder / "minilm_texts_int8.onnx", fuse=False, quantize=True)
    model = SentenceTransformer(str(minilm_path()), device="cpu")
    sentences = docstring_sentences(BATCH * (4 if args.quick else 16))
    runtime = EmbeddingRuntime(path, threads=args.threads, batch_size=BATCH)
    runtime8 = EmbeddingRuntime(int8, threads=args.threads, batch_size=BATCH)
    chunks = [sentences[i : i + BATCH] for i in range(0, len(sentences), BATCH)]
    tokens = [len(t[0]) for t in runtime.tokenizer.tokenize(sentences)]

    def arrival_order() -> None:  # each request padded to its longest text, texts in the order they came
        for chunk in chunks:
            runtime.run(runtime.feed_from_texts(chunk))

    def st_per_request() -> None:
        for chunk in chunks:
            model.encode(chunk, batch_size=BATCH)

    fns = {
        "sentence-transformers encode (torch), all texts in one call": lambda: model.encode(sentences, batch_size=BATCH),
        "sentence-transformers encode (torch), one call per 32 texts": st_per_request,
        "onnxruntime, requests of 32 in arrival order": arrival_order,
        "EmbeddingRuntime.embed_texts (by length), per 32": lambda: [runtime.embed_texts(c) for c in chunks],
        "EmbeddingRuntime.embed_texts int8, per 32": lambda: [runtime8.embed_texts(c) for c in chunks],
    }
    secs = interleaved(fns, rounds, repeat)
    rows = [_row("minilm texts", name, len(sentences), s) for name, s in secs.items()]
    for row in rows:
        row["note"] = f"{len(sentences)} texts, batch {BATCH}"
    state = {"next": 0}

    def text_docs():  # noqa: ANN202
        chunk = chunks[state["next"] % len(chunks)]
        state["next"] += 1
        return DocumentArray([Document(text=t) for t in chunk])

    flows = {}
    for name, model_path in (("flow", path), ("flow int8", int8)):
        with build_flow(model_path, threads=args.threads, batch_size=BATCH) as flow:
            if name == "flow":
                served = _post(flow, "grpc", DocumentArray([Document(text=t) for t in chunks[0]])).embeddings
            flows[name] = load_flow(flow, text_docs, seconds, args.concurrency, 2 * args.concurrency)
        rows += _flow_rows(flows[name], "minilm texts", name, BATCH)
    reference = model.encode(chunks[0], batch_size=BATCH)
    st_torch = len(sentences) / secs["sentence-transformers encode (torch), one call per 32 texts"]
    st_all = len(sentences) / secs["sentence-transformers encode (torch), all texts in one call"]
    grpc, grpc8 = flows["flow"]["grpc"][0] * BATCH, flows["flow int8"]["grpc"][0] * BATCH
    ort = len(sentences) / secs["EmbeddingRuntime.embed_texts (by length), per 32"]
    corpus, queries = paraphrase_set(200 if args.quick else 1000)
    fp32_recall, int8_recall = (recall_at_10(p, corpus, queries, args.threads) for p in (path, int8))
    auto = choose_precision(onnx.load(str(path)), onnx.load(str(int8)), None, runtime.tokenizer, args.threads)
    notes = [
        f"texts: {len(sentences)} standard-library docstring sentences, tokens per text: median "
        f"{int(np.median(tokens))}, p90 {int(np.percentile(tokens, 90))}, max {max(tokens)} (truncated at "
        f"{runtime.tokenizer.max_length}, sentence-transformers' max_seq_length)",
        f"texts: served embeddings vs sentence-transformers encode: max abs diff {float(np.abs(served - reference).max()):.1e}",
        f"texts: Flow gRPC {grpc:.1f} sentences/s vs sentence-transformers torch {st_torch:.1f} (per request of 32) = "
        f"{grpc / st_torch:.2f}x, vs {st_all:.1f} (all texts in one call, sorted globally) = {grpc / st_all:.2f}x",
        f"texts: Flow gRPC int8 {grpc8:.1f} sentences/s = {grpc8 / st_torch:.2f}x sentence-transformers torch (per "
        f"request); int8 recall@10 {int8_recall * 100:.1f} vs fp32 {fp32_recall * 100:.1f} on {len(corpus)} "
        "paraphrase queries",
        f"texts: export(quantize='auto') on this CPU (held-out docstring sample) chooses {auto.describe()}",
        f"texts: Flow gRPC / onnxruntime in process (embed_texts, per 32) = {grpc / ort:.2f}x; batching by length "
        f"vs arrival order in process: {secs['onnxruntime, requests of 32 in arrival order'] / secs['EmbeddingRuntime.embed_texts (by length), per 32']:.2f}x",
        "texts: sentence-transformers' ONNX backend (backend='onnx') is not measured: it needs optimum-onnx, whose "
        "newest release (0.1.0) requires transformers<4.58 while the pins hold transformers 5.24 (pip: "
        "ResolutionImpossible for sentence-transformers[onnx]==6.3.0 with constraints.txt)",
    ]
    return rows, notes


def run_sections(names: list[str], args, folder: Path, seconds: float, rounds: int,  # noqa: ANN001
                 repeat: int) -> tuple[list[dict], list[str]]:
    """Run the client-shaped sections named in ``names`` (``images``, ``texts``); their rows and notes."""
    rows: list[dict] = []
    notes: list[str] = [f"CPU: {cpu_name()}"]
    for name in names:
        part_rows, part_notes = {"images": bench_images, "texts": bench_texts}[name](args, folder, seconds, rounds,
                                                                                      repeat)
        rows += part_rows
        notes += part_notes
    return rows, notes
