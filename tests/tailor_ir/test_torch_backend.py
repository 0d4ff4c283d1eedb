"""The torch backend: rehydrated zoo models compute what the originals and onnxruntime compute, and train."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
import torch
from onnx_graphs import cnn_graph
from torch_cases import ZOO_NAMES, call, exported, numpy_feed, rehydrated

from models import torch_zoo
from tailor_ir import runtime
from tailor_ir.backends import torch as torch_backend
from tailor_ir.backends.torch.converters.norm import BatchNorm
from tailor_ir.errors import EquivalenceError, UnsupportedOpError
from tailor_ir.frontends import torch as torch_frontend
from tailor_ir.graph import Graph


@pytest.mark.parametrize("name", ZOO_NAMES)
def test_outputs_match_model_and_onnxruntime_at_two_batch_sizes(name: str) -> None:
    model, graph = exported(name)
    module = rehydrated(name)
    assert not module.training
    for batch in (2, 3):
        _, sample = torch_zoo.build(name, batch=batch)
        with torch.no_grad():
            expected = call(model, sample)
            got = call(module, sample)
        ort = runtime.run(graph, numpy_feed(sample, graph.input_names))
        assert len(got) == len(ort) == len(graph.output_names)
        for g, e, o in zip(got, expected, ort):
            runtime.assert_close(g.numpy(), e.numpy(), rtol=1e-4, what=f"{name} vs torch")
            runtime.assert_close(g.numpy(), o, rtol=1e-4, what=f"{name} vs onnxruntime")


@pytest.mark.parametrize("name", ZOO_NAMES)
def test_trainable_parameters_are_exactly_the_models(name: str) -> None:
    model, graph = exported(name)
    module = rehydrated(name)
    trainable = [p for p in module.parameters() if p.requires_grad]
    assert sum(p.numel() for p in trainable) == sum(p.numel() for p in model.parameters())
    assert len(trainable) == len(list(model.parameters()))
    names = module.weight_names
    assert set(names) == set(graph.weights)
    for pname, param in model.named_parameters():
        assert names[pname].shape == param.shape
        assert torch.equal(names[pname].detach(), param.detach())
    assert not any(b.requires_grad for b in module.buffers())


@pytest.mark.parametrize("name", ["small_cnn", "mlp", "lstm", "gru", "transformer", "resnet18", "tiny_bert"])
def test_gradients_match_the_original_and_a_step_changes_exactly_the_weights(name: str) -> None:
    model, graph = exported(name)
    module = torch_backend.rehydrate(graph, check=False)  # a fresh copy: this test trains it
    _, sample = torch_zoo.build(name, batch=2)
    model.zero_grad()
    sum(o.float().square().mean() for o in call(model, sample)).backward()
    sum(o.float().square().mean() for o in call(module, sample)).backward()
    for pname, param in model.named_parameters():
        got = module.weight_names[pname].grad
        ref = param.grad if param.grad is not None else torch.zeros_like(param)
        runtime.assert_close(got.numpy(), ref.numpy(), rtol=1e-3, atol=1e-6, what=f"grad {pname}")
    model.zero_grad()
    before = {n: p.detach().clone() for n, p in module.weight_names.items()}
    torch.optim.SGD(module.parameters(), lr=0.1).step()
    for n, p in module.weight_names.items():
        moved = not torch.equal(before[n], p.detach())
        assert moved == (not torch.equal(before[n] - 0.1 * p.grad, before[n])), n
        torch.testing.assert_close(p.detach(), before[n] - 0.1 * p.grad)
    assert sum(not torch.equal(before[n], p.detach()) for n, p in module.weight_names.items()) >= len(before) // 2


@pytest.mark.parametrize("name", ["small_cnn", "tiny_bert"])
def test_frozen_weights_stay_fixed(name: str) -> None:
    model, sample = torch_zoo.build(name)
    frozen = [n for n, _ in model.named_parameters()][:3]
    for n, p in model.named_parameters():
        p.requires_grad_(n not in frozen)
    graph = torch_frontend.export(model, sample)
    assert graph.frozen == set(frozen)
    module = torch_backend.rehydrate(graph, sample_inputs=sample)
    assert {n for n, p in module.weight_names.items() if not p.requires_grad} == set(frozen)
    expected = sum(p.numel() for p in model.parameters() if p.requires_grad)
    assert sum(p.numel() for p in module.parameters() if p.requires_grad) == expected
    before = {n: p.detach().clone() for n, p in module.weight_names.items()}
    module.train()
    opt = torch.optim.Adam([p for p in module.parameters() if p.requires_grad], lr=0.01)
    sum(o.float().mean() for o in call(module, sample)).backward()
    opt.step()
    for n, p in module.weight_names.items():
        assert torch.equal(before[n], p.detach()) == (n in frozen), n
    module.freeze([frozen[0]], frozen=False)
    assert module.weight(frozen[0]).requires_grad


def test_batchnorm_running_stats_update_like_the_original() -> None:
    model, sample = torch_zoo.small_cnn(batch=4)
    graph = torch_frontend.export(model, sample)
    module = torch_backend.rehydrate(graph, sample_inputs=sample)
    bns = [m for m in module.modules() if isinstance(m, BatchNorm)]
    assert len(bns) == 2
    start = bns[0].running_mean.clone()
    model.train()
    module.train()
    x = torch.randn(4, 1, 8, 8) * 3 + 1
    model(x)
    module(x)
    assert not torch.equal(bns[0].running_mean, start)
    for bn, ref in zip(bns, [model.bn1, model.bn2]):
        torch.testing.assert_close(bn.running_mean, ref.running_mean, rtol=1e-5, atol=1e-6)
        torch.testing.assert_close(bn.running_var, ref.running_var, rtol=1e-5, atol=1e-6)
    module.eval()
    frozen_stats = bns[0].running_mean.clone()
    module(x)
    assert torch.equal(bns[0].running_mean, frozen_stats)


@pytest.mark.parametrize("name", ["small_cnn", "tiny_bert"])
def test_dropout_random_in_train_deterministic_in_eval(name: str) -> None:
    module = rehydrated(name)
    _, sample = torch_zoo.build(name, batch=4)
    try:
        module.train()
        torch.manual_seed(0)
        a, b = call(module, sample)[0], call(module, sample)[0]
        assert not torch.equal(a, b)
        module.eval()
        with torch.no_grad():
            c, d = call(module, sample)[0], call(module, sample)[0]
        assert torch.equal(c, d)
    finally:
        module.eval()


def test_positional_and_keyword_calls_agree() -> None:
    module = rehydrated("tiny_bert")
    _, sample = torch_zoo.build("tiny_bert", batch=2)
    assert module.input_names == ["input_ids", "attention_mask"]
    with torch.no_grad():
        by_name = module(**sample)
        by_position = module(sample["input_ids"], sample["attention_mask"])
        mixed = module(sample["input_ids"], attention_mask=sample["attention_mask"])
    assert torch.equal(by_name, by_position) and torch.equal(by_name, mixed)
    with pytest.raises(TypeError, match="attention_mask"):
        module(input_ids=sample["input_ids"])


def test_minilm_has_two_outputs_and_all_weights_trainable() -> None:
    model, graph = exported("minilm")
    module = rehydrated("minilm")
    assert len(graph.output_names) == 2
    _, sample = torch_zoo.build("minilm", batch=2)
    with torch.no_grad():
        out = module(**sample)
    assert isinstance(out, tuple) and len(out) == 2
    assert sum(p.numel() for p in module.parameters() if p.requires_grad) == 22_713_216
    assert module.weight("embeddings.word_embeddings.weight").shape == (30522, 384)


def test_tied_weights_stay_one_parameter() -> None:
    class Tied(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.embedding = torch.nn.Embedding(20, 8)
            self.decoder = torch.nn.Linear(8, 20, bias=False)
            self.decoder.weight = self.embedding.weight

        def forward(self, ids: torch.Tensor) -> torch.Tensor:
            return self.decoder(torch.tanh(self.embedding(ids)))

    model = Tied()
    sample = torch.randint(0, 20, (2, 5))
    graph = torch_frontend.export(model, sample)
    module = torch_backend.rehydrate(graph, sample_inputs=sample)
    params = [p for p in module.parameters() if p.requires_grad]
    assert len(params) == 1 and params[0].shape == (20, 8)
    model.eval()
    with torch.no_grad():
        torch.testing.assert_close(module(sample), model(sample), rtol=1e-5, atol=1e-6)


def test_unsupported_op_names_node_and_layer() -> None:
    graph = cnn_graph()
    model = onnx.ModelProto()
    model.CopyFrom(graph.model)
    relu = next(n for n in model.graph.node if n.name == "n_relu2")
    relu.op_type = "Unique"
    bad = graph.replace(model=model)
    with pytest.raises(UnsupportedOpError, match="n_relu2") as info:
        torch_backend.rehydrate(bad)
    assert info.value.op_type == "Unique" and info.value.node == "n_relu2"
    assert info.value.layer == "block.act" and info.value.opset == 18


def test_head_ops_from_surgery_are_supported() -> None:
    """ReduceMean/ReduceL2/ReduceSum-18, LpNormalization, Gemm, Div, Clip as a surgery head would emit them."""
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(0)
    w = numpy_helper.from_array(rng.standard_normal((6, 4)).astype(np.float32), "proj.weight")
    b = numpy_helper.from_array(rng.standard_normal(4).astype(np.float32), "proj.bias")
    axes = numpy_helper.from_array(np.array([1], dtype=np.int64), "axes")
    nodes = [
        helper.make_node("ReduceMean", ["x", "axes"], ["pooled"], name="mean", keepdims=0),
        helper.make_node("MatMul", ["pooled", "proj.weight"], ["mm"], name="mm"),
        helper.make_node("Add", ["mm", "proj.bias"], ["proj"], name="add"),
        helper.make_node("ReduceL2", ["proj", "axes"], ["norm"], name="l2", keepdims=1),
        helper.make_node("Clip", ["norm", "eps"], ["safe"], name="clip"),
        helper.make_node("Div", ["proj", "safe"], ["unit"], name="div"),
        helper.make_node("LpNormalization", ["unit"], ["lp"], name="lp", axis=-1, p=2),
        helper.make_node("ReduceSum", ["lp", "axes"], ["s"], name="sum", keepdims=1),
        helper.make_node("Mul", ["lp", "s"], ["out"], name="mul"),
    ]
    eps = numpy_helper.from_array(np.array(1e-12, dtype=np.float32), "eps")
    g = helper.make_graph(
        nodes, "head", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 5, 6])],
        [helper.make_tensor_value_info("out", TensorProto.FLOAT, ["batch", 4])], [w, b, axes, eps],
    )
    graph = Graph(helper.make_model(g, opset_imports=[helper.make_opsetid("", 18)]), framework="torch",
                  weights=frozenset({"proj.weight", "proj.bias"}))
    module = torch_backend.rehydrate(graph)  # checks against onnxruntime
    assert set(module.weight_names) == {"proj.weight", "proj.bias"}
    x = rng.standard_normal((3, 5, 6)).astype(np.float32)
    with torch.no_grad():
        got = module(torch.from_numpy(x)).numpy()
    runtime.assert_close(got, runtime.run(graph, [x])[0])


def test_equivalence_check_catches_a_wrong_conversion(monkeypatch: pytest.MonkeyPatch) -> None:
    from tailor_ir.backends.torch.converters import activation

    _, graph = exported("tiny_bert")
    monkeypatch.setattr(activation.Gelu, "forward", lambda self, x: torch.relu(x))
    with pytest.raises(EquivalenceError, match="onnxruntime"):
        torch_backend.rehydrate(graph)
