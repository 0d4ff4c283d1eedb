"""Serving throughput: torch eager vs onnxruntime vs a Jina Flow (gRPC/HTTP, 1-2 replicas), plus int8 quality.

Models: resnet18 at 224 px (random weights, fc removed: 512-d) and the pretrained all-MiniLM-L6-v2 at sequence
128 (mean pooled, normalised), at batch 1 and 32. (a) torch eager and (b) onnxruntime run in this process on
the same threads, interleaved so that machine noise hits both alike; (c) the Flow is driven by a bounded
asyncio load generator on loopback (``--concurrency`` requests in flight), reporting p50/p99 latency.
MiniLM is served from the fused export (``finetuner.optimize``); its unfused export is measured too.
int8: dynamic quantization of the exported MiniLM, scored by recall@10 on a paraphrase-retrieval set built from
text on this machine (each query is a sentence with words dropped; its source sentence is the one relevant).

Clients' inputs (``serving_clients.py``): 224 px JPEGs as bytes vs tensors as JSON vs onnxruntime on tensors;
docstring sentences of real lengths vs sentence-transformers' ``encode``.

    python benchmarks/serving.py [--quick] [--models resnet18 minilm images texts] [--out serving]
"""

from __future__ import annotations

import argparse
import asyncio
import inspect
import os
import re
import tempfile
import time
from pathlib import Path

import numpy as np
from _common import median_seconds, write_results

COLUMNS = ["model", "batch", "runner", "protocol", "replicas", "items_per_s", "p50_ms", "p99_ms", "note"]


def build_resnet(folder: Path):  # noqa: ANN201
    """torchvision resnet18 without its fc (512-d), exported with finetuner.export: optimised and plain."""
    import torch

    import finetuner
    from models.torch_zoo import resnet18

    net, _ = resnet18(batch=2, side=224)
    net.fc = torch.nn.Identity()
    net.eval()
    paths = {
        "export": finetuner.export(net, folder / "resnet18.onnx", input_shape=(3, 224, 224)),
        "plain": finetuner.export(net, folder / "resnet18_plain.onnx", input_shape=(3, 224, 224), optimize=False),
    }
    return net, paths


class MiniLMEmbed:
    """Factory of the MiniLM embedding module (masked mean + L2 norm), kept torch-lazy."""

    @staticmethod
    def build(attn: str = "sdpa"):  # noqa: ANN205
        import torch
        from transformers import AutoModel

        from models.torch_zoo import minilm, minilm_path

        _, sample = minilm(batch=2)
        bert = AutoModel.from_pretrained(str(minilm_path()), attn_implementation=attn)

        class Embed(torch.nn.Module):
            def __init__(self) -> None:
                super().__init__()
                self.bert = bert

            def forward(self, input_ids, attention_mask):  # noqa: ANN001, ANN202
                hidden = self.bert(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
                mask = attention_mask.unsqueeze(-1).to(hidden.dtype)
                pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9)
                return torch.nn.functional.normalize(pooled, dim=-1)

        return Embed().eval(), sample


def build_minilm(folder: Path):  # noqa: ANN201
    """MiniLM exported with finetuner.export (fused), without optimisation, and quantized to int8.

    The eager baseline is the Hugging Face model with its fastest attention (``sdpa``); the export is traced
    from the same weights with the ``eager`` attention (the graph the fusions know).
    """
    import finetuner
    from finetuner.optimize import fused_op_counts, optimize_file
    from models.torch_zoo import minilm_tokenizer

    net, sample = MiniLMEmbed.build("sdpa")
    traced, _ = MiniLMEmbed.build("eager")
    sample = {"input_ids": sample["input_ids"], "attention_mask": sample["attention_mask"]}
    tokenizer = minilm_tokenizer()
    paths = {
        "export": finetuner.export(traced, folder / "minilm.onnx", tokenizer=tokenizer, sample_input=sample),
        "plain": finetuner.export(traced, folder / "minilm_plain.onnx", tokenizer=tokenizer, sample_input=sample,
                                  optimize=False),
    }
    paths["int8"] = optimize_file(paths["export"], folder / "minilm_int8.onnx", fuse=False, quantize=True)
    import onnx

    counts = fused_op_counts(onnx.load(str(paths["export"])))
    return net, paths, counts


def ort_session(path: Path, threads: int, serving: bool = True):  # noqa: ANN201
    """onnxruntime with the serving settings (finetuner.optimize.session_options), or all defaults but threads."""
    import onnxruntime as ort

    from finetuner.optimize import session_options

    if serving:
        options = session_options(threads)
    else:
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def gemm_peak(threads: int) -> float:
    """This CPU's fp32 GEMM throughput (GFLOP/s): the best of torch and onnxruntime on three large products."""
    import onnxruntime as ort
    import torch
    from onnx import TensorProto, helper, numpy_helper

    best = 0.0
    for m, k, n in [(2048, 2048, 2048), (4096, 384, 1536), (4096, 1536, 384)]:
        a, b = torch.randn(m, k), torch.randn(k, n)
        graph = helper.make_graph([helper.make_node("MatMul", ["a", "b"], ["c"])], "gemm",
                                  [helper.make_tensor_value_info("a", TensorProto.FLOAT, [m, k])],
                                  [helper.make_tensor_value_info("c", TensorProto.FLOAT, [m, n])],
                                  [numpy_helper.from_array(b.numpy(), "b")])
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        session = ort.InferenceSession(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
                                       .SerializeToString(), options, providers=["CPUExecutionProvider"])
        feed = {"a": a.numpy()}
        for fn in (lambda a=a, b=b: a @ b, lambda s=session, f=feed: s.run(None, f)):
            best = max(best, 2 * m * k * n / median_seconds(fn, repeat=5, warmup=2) / 1e9)
    return best


def model_gflop(net, torch_args: tuple) -> float:  # noqa: ANN001
    """GFLOP of one eager forward (matmuls, convolutions and attention, as torch's FlopCounterMode counts them)."""
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    counter = FlopCounterMode(display=False)
    with torch.inference_mode(), counter:
        net(*torch_args)
    return counter.get_total_flops() / 1e9


def long_texts(n: int, seed: int = 0, tokens: int = 128) -> list[str]:
    """Texts of exactly ``tokens`` MiniLM tokens ([CLS] and [SEP] included): random words of numpy's docstrings,
    cut where the tokenizer's 126th word piece ends, so that the served Flow (which truncates only at the model's
    maximum, 256) and the in-process runs embed the same sequence length."""
    from models.torch_zoo import minilm_tokenizer

    words = re.findall(r"[a-z]{3,}", " ".join(inspect.getdoc(f) or "" for f in vars(np).values() if callable(f)))
    rng = np.random.default_rng(seed)
    tokenizer = minilm_tokenizer()
    texts = []
    for _ in range(n):
        text = " ".join(rng.choice(words, 160))
        offsets = tokenizer(text, truncation=True, max_length=tokens, return_offsets_mapping=True)["offset_mapping"]
        texts.append(text[: offsets[-2][1]])  # the last word piece before [SEP]
    return texts


def interleaved(fns: dict[str, object], rounds: int, repeat: int) -> dict[str, float]:
    """Median seconds per call of each function, measured in alternating rounds."""
    times: dict[str, list[float]] = {k: [] for k in fns}
    for fn in fns.values():
        fn()
    for _ in range(rounds):
        for name, fn in fns.items():
            times[name].append(median_seconds(fn, repeat=repeat, warmup=0))
    return {k: float(np.median(v)) for k, v in times.items()}


def load_flow(flow, docs_factory, seconds: float, concurrency: int, min_requests: int,  # noqa: ANN001, ANN201
              heavy_http: bool = False, parameters: dict | None = None, protocols: tuple[str, ...] = ("grpc", "http")):
    """Throughput (requests/s) and latencies (s) of the Flow's gRPC and HTTP gateways under bounded load.

    ``heavy_http``: requests too large for JSON (a batch of 224 px images is ~100 MB) get one round over HTTP.
    ``parameters``: sent with every request; ``protocols``: which of the Flow's gateways to load.
    """
    from jina import Client

    out = {}
    from finetuner.serving import endpoints

    for address in endpoints(flow):
        protocol, port = address.split("://")[0], int(address.rsplit(":", 1)[1])
        if protocol not in protocols:
            continue
        client = Client(host="127.0.0.1", port=port, protocol=protocol, asyncio=True)

        async def one(latencies: list[float], client=client) -> None:  # noqa: ANN001
            docs = docs_factory()
            start = time.perf_counter()
            async for _ in client.post("/encode", docs, request_size=len(docs), parameters=parameters or {}):
                pass
            latencies.append(time.perf_counter() - start)

        async def drive(budget: float, least: int, lats: list[float]) -> float:
            begin = time.perf_counter()

            async def worker() -> None:
                while time.perf_counter() - begin < budget or len(lats) < least:
                    await one(lats)

            await asyncio.gather(*(worker() for _ in range(concurrency)))
            return time.perf_counter() - begin

        light = not (heavy_http and protocol == "http")
        if light:
            asyncio.run(drive(0, concurrency, []))  # warm-up: one request per worker
        latencies: list[float] = []
        elapsed = asyncio.run(drive(seconds if light else 0, min_requests if light else concurrency, latencies))
        out[protocol] = (len(latencies) / elapsed, latencies)
    return out


def recall_at_10(path: Path, corpus: list[str], queries: list[str], threads: int) -> float:
    """recall@10 of each query finding its own source sentence (``finetuner.precision.recall_at_k``)."""
    from finetuner.precision import recall_at_k
    from finetuner.serving.model import EmbeddingRuntime

    runtime = EmbeddingRuntime(path, threads=threads, batch_size=64)
    docs = np.concatenate([runtime.run(runtime.feed_from_texts(corpus[i : i + 64])) for i in range(0, len(corpus), 64)])
    qs = np.concatenate([runtime.run(runtime.feed_from_texts(queries[i : i + 64])) for i in range(0, len(queries), 64)])
    return recall_at_k(qs, docs, [{i} for i in range(len(queries))], k=10)


def paraphrase_set(n: int, seed: int = 0) -> tuple[list[str], list[str]]:
    """``quantize='auto'``'s own held-out data: standard-library docstring sentences, queried with 40% of their
    words dropped (``finetuner.precision``)."""
    from finetuner.precision import held_out_texts, paraphrases

    corpus = held_out_texts(n, seed)
    return corpus, paraphrases(corpus, seed=seed)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer repeats and shorter load runs")
    parser.add_argument("--threads", type=int, default=2, help="threads for torch, onnxruntime and the Flow")
    parser.add_argument("--concurrency", type=int, default=2, help="requests in flight from the load generator")
    parser.add_argument("--rounds", type=int, default=5, help="interleaved rounds of eager vs onnxruntime")
    parser.add_argument("--seconds", type=float, default=None, help="load-generator seconds per protocol")
    parser.add_argument("--heavy-http", action="store_true",
                        help="also send batches of 32 224-px images over HTTP (JSON, ~100 MB, minutes per request)")
    parser.add_argument("--models", nargs="+", default=["resnet18", "minilm", "images", "texts"],
                        choices=["resnet18", "minilm", "images", "texts"])
    parser.add_argument("--out", default="serving", help="results name: benchmarks/results/<out>.{json,md}")
    args = parser.parse_args()

    import torch

    from finetuner.serving import build_flow
    from finetuner.serving.model import EmbeddingRuntime

    torch.set_num_threads(args.threads)
    rounds, repeat = (2, 2) if args.quick else (args.rounds, 1)
    seconds = args.seconds or (3.0 if args.quick else 8.0)
    rows: list[dict] = []
    notes: list[str] = [f"threads={args.threads}, concurrency={args.concurrency}, rounds={rounds}, "
                        f"load seconds={seconds}, quick={args.quick}; each ratio is of medians measured "
                        f"interleaved in one run; 1-minute load average {os.getloadavg()[0]:.1f} at the start"]
    folder = Path(tempfile.mkdtemp(prefix="finetuner-bench-serving-"))
    models = [m for m in args.models if m in ("resnet18", "minilm")]
    if models:
        peak = gemm_peak(args.threads)
        notes.append(f"fp32 GEMM peak of this CPU on {args.threads} threads: {peak:.1f} GFLOP/s (best of torch and "
                     "onnxruntime MatMul on three large products); 'ceiling' below is the speed-up over eager that "
                     "running every FLOP of the model at that peak would give")

    for name in models:
        if name == "resnet18":
            net, paths = build_resnet(folder)
        else:
            net, paths, counts = build_minilm(folder)
            notes.append(f"minilm export fused ops: {counts}")
        serve_path = paths["export"]
        for batch in (1, 32):
            if name == "resnet18":
                x = np.random.default_rng(0).standard_normal((batch, 3, 224, 224)).astype(np.float32)
                feed = {EmbeddingRuntime(serve_path, threads=1).inputs[0].name: x}
                torch_args = (torch.from_numpy(x),)
                texts = None
            else:
                texts = long_texts(batch)
                feed = EmbeddingRuntime(serve_path, threads=1).feed_from_texts(texts)
                assert feed["input_ids"].shape[0] == batch and abs(feed["input_ids"].shape[1] - 128) <= 2
                torch_args = (torch.from_numpy(feed["input_ids"]), torch.from_numpy(feed["attention_mask"]))
            sessions = {
                "onnxruntime": ort_session(serve_path, args.threads),
                "onnxruntime, default session options": ort_session(serve_path, args.threads, serving=False),
                "onnxruntime, export(optimize=False)": ort_session(paths["plain"], args.threads),
            }
            if "int8" in paths:
                sessions["onnxruntime int8"] = ort_session(paths["int8"], args.threads)

            def eager(torch_args=torch_args, net=net):  # noqa: ANN001, ANN202
                with torch.inference_mode():
                    return net(*torch_args)

            fns = {"torch eager": eager, **{k: (lambda s=s, f=feed: s.run(None, f)) for k, s in sessions.items()}}
            with torch.inference_mode():
                reference = net(*torch_args).numpy()
            diffs = {k: float(np.abs(s.run(None, feed)[0] - reference).max()) for k, s in sessions.items()}
            reps = repeat if batch == 32 else repeat * 10
            secs = interleaved(fns, rounds, reps)
            for runner, sec in secs.items():
                rows.append({"model": name, "batch": batch, "runner": runner, "protocol": "-", "replicas": "-",
                             "items_per_s": round(batch / sec, 2), "p50_ms": round(sec * 1e3, 2), "p99_ms": "",
                             "note": f"max abs diff vs torch {diffs[runner]:.1e}; {secs['torch eager'] / sec:.2f}x eager"
                             if runner in diffs else "inference_mode, eval"})
            ratio = secs["torch eager"] / secs["onnxruntime"]
            gflop = model_gflop(net, torch_args)
            rows.append({"model": name, "batch": batch, "runner": "roofline", "protocol": "-", "replicas": "-",
                         "items_per_s": round(batch / (gflop / peak), 2), "p50_ms": round(gflop / peak * 1e3, 2),
                         "p99_ms": "", "note": f"{gflop:.1f} GFLOP at {peak:.0f} GFLOP/s; ceiling "
                         f"{secs['torch eager'] * peak / gflop:.2f}x eager"})
            notes.append(f"{name} batch {batch}: {gflop:.1f} GFLOP per call; torch eager runs at "
                         f"{gflop / secs['torch eager'] / peak:.0%} of the GEMM peak, onnxruntime at "
                         f"{gflop / secs['onnxruntime'] / peak:.0%}; ceiling {secs['torch eager'] * peak / gflop:.2f}x eager")
            notes.append(f"{name} batch {batch}: onnxruntime / torch eager = {ratio:.2f}x "
                         f"(max diff {diffs['onnxruntime']:.1e}); default session options "
                         f"{secs['torch eager'] / secs['onnxruntime, default session options']:.2f}x; "
                         f"export(optimize=False) {secs['torch eager'] / secs['onnxruntime, export(optimize=False)']:.2f}x"
                         + (f"; int8 {secs['torch eager'] / secs['onnxruntime int8']:.2f}x" if "onnxruntime int8" in secs else ""))

            def docs_factory(x=feed, texts=texts):  # noqa: ANN001, ANN202
                from docarray import Document, DocumentArray

                if texts is not None:
                    return DocumentArray([Document(text=t) for t in texts])
                return DocumentArray([Document(tensor=t) for t in next(iter(x.values()))])

            heavy_http = name == "resnet18" and batch == 32  # JSON tensors: ~100 MB per request
            protocols = ["grpc"] if heavy_http and not args.heavy_http else ["grpc", "http"]
            direct = {}
            for replicas in (1, 2):
                flow = build_flow(serve_path, replicas=replicas, threads=max(1, args.threads // replicas),
                                  batch_size=64, protocols=protocols)
                with flow:
                    results = load_flow(flow, docs_factory, seconds, args.concurrency, 2 * args.concurrency,
                                        heavy_http=heavy_http)
                    if replicas == 1:  # onnxruntime right after, under the same load: the Flow's ratio
                        direct_s = median_seconds(fns["onnxruntime"], repeat=3 if batch == 32 else 20)
                for protocol, (rps, lats) in results.items():
                    lats_ms = np.array(lats) * 1e3
                    rows.append({"model": name, "batch": batch, "runner": "flow", "protocol": protocol,
                                 "replicas": replicas, "items_per_s": round(rps * batch, 2),
                                 "p50_ms": round(float(np.percentile(lats_ms, 50)), 2),
                                 "p99_ms": round(float(np.percentile(lats_ms, 99)), 2),
                                 "note": f"{len(lats)} requests" + (", tensors as JSON" if heavy_http and protocol == "http" else "")})
                    direct[(protocol, replicas)] = rps * batch
            best = batch / min(secs["onnxruntime"], direct_s)
            notes.append(f"{name} batch {batch}: Flow gRPC / onnxruntime = {direct[('grpc', 1)] / best:.2f}x "
                         f"(1 replica), {direct[('grpc', 2)] / best:.2f}x (2 replicas); onnxruntime taken at its "
                         f"best of the interleaved run and a run beside the Flow")
            if heavy_http and not args.heavy_http:
                notes.append(f"{name} batch {batch}: HTTP not measured (tensors as JSON, ~100 MB per request; "
                             "run with --heavy-http)")
        if name == "minilm":
            corpus, queries = paraphrase_set(200 if args.quick else 1000)
            fp32 = recall_at_10(paths["export"], corpus, queries, args.threads)
            int8 = recall_at_10(paths["int8"], corpus, queries, args.threads)
            size = {k: paths[k].stat().st_size / 2**20 for k in ("export", "int8")}
            notes.append(f"minilm int8: recall@10 {int8 * 100:.1f} vs fp32 {fp32 * 100:.1f} "
                         f"({(fp32 - int8) * 100:+.1f} points lost) on {len(corpus)} paraphrase queries; "
                         f"{size['int8']:.0f} MB vs {size['export']:.0f} MB")
            rows.append({"model": "minilm int8", "batch": len(corpus), "runner": "recall@10", "protocol": "-",
                         "replicas": "-", "items_per_s": "", "p50_ms": "", "p99_ms": "",
                         "note": f"int8 {int8:.3f} vs fp32 {fp32:.3f}"})
    sections = [m for m in args.models if m in ("images", "texts")]
    if sections:
        from serving_clients import run_sections

        more_rows, more_notes = run_sections(sections, args, folder, seconds, rounds, repeat)
        rows += more_rows
        notes += more_notes
    path = write_results(args.out, rows, COLUMNS, notes)
    print("\n".join(notes))
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
