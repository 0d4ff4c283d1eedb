"""Export-time optimisation: transformer fusion keeps the embeddings, int8 quantization shrinks MatMuls."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
import torch

from finetuner.onnx_meta import EmbeddingModelMeta
from finetuner.optimize import (
    fuse_transformer,
    fused_op_counts,
    is_transformer,
    max_difference,
    optimize_for_serving,
    physical_cores,
    quantize_int8,
    sample_feed,
    session_options,
    simplify,
)


class _MeanPooled(torch.nn.Module):
    """A BERT's masked mean of the last hidden state."""

    def __init__(self, bert: torch.nn.Module) -> None:
        super().__init__()
        self.bert = bert

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        hidden = self.bert(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
        mask = attention_mask.unsqueeze(-1).to(hidden.dtype)
        return (hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9)


@pytest.fixture(scope="module")
def bert_onnx() -> onnx.ModelProto:
    from models.torch_zoo import tiny_bert

    bert, sample = tiny_bert(batch=2)
    batch, seq = torch.export.Dim("batch"), torch.export.Dim("seq")
    program = torch.onnx.export(
        _MeanPooled(bert).eval(), (sample["input_ids"], sample["attention_mask"]),
        input_names=["input_ids", "attention_mask"],
        dynamic_shapes=({0: batch, 1: seq}, {0: batch, 1: seq}), dynamo=True, verbose=False,
    )
    model = program.model_proto
    EmbeddingModelMeta.for_model(model, "torch", {"kind": "tokens"}).apply(model)
    return model


def test_fusion_finds_attention_and_keeps_embeddings(bert_onnx):
    assert is_transformer(bert_onnx)
    fused = fuse_transformer(bert_onnx, check=True, atol=1e-4)
    counts = fused_op_counts(fused)
    assert counts.get("Attention") == 2, counts  # one per layer of the 2-layer BERT
    assert max_difference(bert_onnx, fused, [sample_feed(bert_onnx, batch=4, seq_len=20, seed=3)]) <= 1e-4
    assert EmbeddingModelMeta.from_model(fused) == EmbeddingModelMeta.from_model(bert_onnx)


def test_sample_feed_pads_masks_and_keeps_ids_small(bert_onnx):
    feed = sample_feed(bert_onnx, batch=3, seq_len=10)
    assert feed["input_ids"].shape == (3, 10) and feed["input_ids"].dtype == np.int64
    assert feed["input_ids"].max() < 100
    assert feed["attention_mask"][0].all() and not feed["attention_mask"][2].all()


def test_int8_quantization_is_close_and_uses_integer_matmuls(bert_onnx):
    quantized = quantize_int8(fuse_transformer(bert_onnx))
    ops = {node.op_type for node in quantized.graph.node}
    assert ops & {"MatMulInteger", "QAttention", "DynamicQuantizeMatMul"}, ops
    assert EmbeddingModelMeta.from_model(quantized).framework == "torch"
    diff = max_difference(bert_onnx, quantized)
    assert 0 < diff < 0.5


def test_non_transformer_graph_is_left_alone():
    from models.torch_zoo import mlp

    net, x = mlp()
    program = torch.onnx.export(net.eval(), (x,), dynamic_shapes=({0: torch.export.Dim("batch")},),
                                 dynamo=True, verbose=False)
    model = program.model_proto
    assert not is_transformer(model)
    assert optimize_for_serving(model, simplify_graph=False) is model
    assert not fused_op_counts(optimize_for_serving(model))


def test_simplify_folds_conv_biases_and_batch_norm_and_keeps_outputs(tmp_path):
    import finetuner
    from models.torch_zoo import small_cnn

    net, _ = small_cnn(in_channels=1, side=8)
    for module in net.modules():  # non-trivial running statistics
        if isinstance(module, torch.nn.BatchNorm2d):
            module.running_mean.uniform_(-0.5, 0.5)
            module.running_var.uniform_(0.5, 2.0)
    net.eval()
    plain = onnx.load(str(finetuner.export(net, tmp_path / "plain.onnx", input_shape=(1, 8, 8), optimize=False)))
    before = {node.op_type for node in plain.graph.node}
    assert "BatchNormalization" in before, before
    simple = simplify(plain)
    after = {node.op_type for node in simple.graph.node}
    assert not after & {"BatchNormalization", "Expand", "CastLike", "Shape"}, after
    assert len(simple.graph.node) < len(plain.graph.node)
    feeds = [sample_feed(plain, batch=5, seed=4), sample_feed(plain, batch=1, seed=5)]
    assert max_difference(plain, simple, feeds) <= 1e-5
    assert EmbeddingModelMeta.from_model(simple) == EmbeddingModelMeta.from_model(plain)
    exported = onnx.load(str(finetuner.export(net, tmp_path / "served.onnx", input_shape=(1, 8, 8))))
    assert "BatchNormalization" not in {node.op_type for node in exported.graph.node}


def test_session_options_for_serving():
    import onnxruntime as ort

    options = session_options(3)
    assert options.intra_op_num_threads == 3 and options.inter_op_num_threads == 1
    assert options.graph_optimization_level == ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    assert options.enable_mem_pattern
    assert options.get_session_config_entry("session.intra_op.allow_spinning") == "0"
    assert session_options(0).intra_op_num_threads == physical_cores() >= 1
    assert session_options(1, spinning=True).get_session_config_entry("session.intra_op.allow_spinning") == "1"
