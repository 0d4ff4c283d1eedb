"""The torch frontend: export -> Graph with layer map, weights, frozen marks, dynamic axes; user state kept."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch_cases import exported

from models import torch_zoo
from tailor_ir import runtime
from tailor_ir.errors import ExportError, ModelTypeError
from tailor_ir.frontends import torch as torch_frontend


def test_non_model_raises_model_type_error() -> None:
    with pytest.raises(ModelTypeError, match="torch.nn.Module"):
        torch_frontend.export(object(), torch.zeros(2, 3))
    with pytest.raises(ModelTypeError):
        torch_frontend.export(lambda x: x, torch.zeros(2, 3))


@pytest.mark.parametrize(
    ("name", "kind", "inputs"),
    [
        ("small_cnn", "image", {"x": ["batch", 1, 8, 8]}),
        ("mlp", "vector", {"x": ["batch", 64]}),
        ("lstm", "tokens", {"input_ids": ["batch", "sequence"]}),
        ("tiny_bert", "tokens", {"input_ids": ["batch", "sequence"], "attention_mask": ["batch", "sequence"]}),
    ],
)
def test_inputs_are_dynamic_and_kind_recorded(name: str, kind: str, inputs: dict[str, list]) -> None:
    _, graph = exported(name)
    assert graph.framework == "torch"
    assert graph.extra["input_kind"] == kind
    got = {
        i.name: [d.dim_param or d.dim_value for d in i.type.tensor_type.shape.dim] for i in graph.model.graph.input
    }
    assert got == inputs


@pytest.mark.parametrize("name", ["small_cnn", "resnet18", "tiny_bert", "lstm"])
def test_weights_are_the_parameters_and_buffers_are_not(name: str) -> None:
    model, graph = exported(name)
    assert graph.weights == {n for n, _ in model.named_parameters()}
    buffers = {n for n, _ in model.named_buffers()} & set(graph.initializers)
    assert not buffers & graph.weights
    assert graph.frozen == frozenset()
    if name in ("small_cnn", "resnet18"):
        assert "bn1.running_mean" in graph.initializers and "bn1.running_mean" not in graph.weights


def test_layer_map_uses_module_paths() -> None:
    _, resnet = exported("resnet18")
    layers = set(resnet.layer_map.values())
    assert {"conv1", "bn1", "layer3.1.conv2", "layer4.0.downsample.0", "fc"} <= layers
    conv = next(n for n in resnet.model.graph.node if n.op_type == "Conv" and "layer3.1.conv2.weight" in n.input)
    assert resnet.layer_map[conv.name] == "layer3.1.conv2"
    assert "layer3" in resnet.layer_names and "layer3.1" in resnet.layer_names
    _, bert = exported("tiny_bert")
    assert "encoder.layer.0.attention.self.query" in set(bert.layer_map.values())
    assert not any(v.startswith("_") for v in bert.layer_map.values())


def test_batchnorm_and_dropout_survive_export() -> None:
    _, cnn = exported("small_cnn")
    ops = [n.op_type for n in cnn.model.graph.node]
    assert ops.count("BatchNormalization") == 2 and ops.count("Dropout") == 1
    _, mobilenet = exported("mobilenet_v3_small")  # its Dropout is in-place: still a Dropout node
    ops = {n.op_type for n in mobilenet.model.graph.node}
    assert "Dropout" in ops and "RandomUniformLike" not in ops


@pytest.mark.parametrize("name", ["small_cnn", "transformer", "tiny_bert"])
@pytest.mark.parametrize("batch", [1, 3])
def test_onnxruntime_matches_the_model_at_other_batch_sizes(name: str, batch: int) -> None:
    model, graph = exported(name)
    _, sample = torch_zoo.build(name, batch=batch)
    with torch.no_grad():
        ref = model(**sample) if isinstance(sample, dict) else model(sample)
    ref = ref if isinstance(ref, torch.Tensor) else ref[0]
    feed = {n: (sample[n] if isinstance(sample, dict) else sample).numpy() for n in graph.input_names}
    out = runtime.run(graph, feed)[0]
    runtime.assert_close(out, ref.numpy(), rtol=1e-4)


def _snapshot(model: torch.nn.Module) -> tuple[dict, dict, dict]:
    state = {k: v.detach().clone() for k, v in model.state_dict().items()}
    modes = {n: m.training for n, m in model.named_modules()}
    grads = {n: p.requires_grad for n, p in model.named_parameters()}
    return state, modes, grads


@pytest.mark.parametrize("mode", ["eval", "train"])
def test_export_leaves_the_user_model_unchanged(mode: str) -> None:
    model, sample = torch_zoo.small_cnn()
    model.fc.weight.requires_grad_(False)
    model.train(mode == "train")
    model.dropout.train(False)  # a mixed state must come back as it was
    before = _snapshot(model)
    graph = torch_frontend.export(model, sample)
    after = _snapshot(model)
    assert before[1] == after[1] and before[2] == after[2]
    assert before[0].keys() == after[0].keys()
    assert all(torch.equal(before[0][k], after[0][k]) for k in before[0])
    assert graph.frozen == {"fc.weight"} and "fc.weight" in graph.weights


def test_inplace_flags_restored() -> None:
    model, sample = torch_zoo.mobilenet_v3_small()
    flags = [m.inplace for m in model.modules() if isinstance(m, torch.nn.Dropout)]
    assert any(flags)
    _, graph = exported("mobilenet_v3_small")
    assert graph.extra["input_kind"] == "image"
    torch_frontend.export(torch_zoo.small_cnn()[0], input_shape=(1, 8, 8))
    assert [m.inplace for m in model.modules() if isinstance(m, torch.nn.Dropout)] == flags


def test_input_shape_builds_a_sample() -> None:
    model, _ = torch_zoo.mlp()
    graph = torch_frontend.export(model, input_shape=(64,))
    x = np.random.default_rng(1).standard_normal((5, 64)).astype(np.float32)
    model.eval()
    with torch.no_grad():
        ref = model(torch.from_numpy(x)).numpy()
    runtime.assert_close(runtime.run(graph, [x])[0], ref)


def test_tuple_sample_and_positional_names() -> None:
    class TwoInputs(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.a = torch.nn.Linear(4, 3)
            self.b = torch.nn.Linear(5, 3)

        def forward(self, left: torch.Tensor, right: torch.Tensor) -> torch.Tensor:
            return self.a(left) * self.b(right)

    graph = torch_frontend.export(TwoInputs(), (torch.randn(2, 4), torch.randn(2, 5)))
    assert graph.input_names == ["left", "right"]
    assert graph.weights == {"a.weight", "a.bias", "b.weight", "b.bias"}


def test_export_failure_is_an_export_error_with_advice() -> None:
    class DataDependent(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.fc = torch.nn.Linear(4, 4)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            if self.fc(x).sum() > 0:  # control flow on a tensor value
                return x.nonzero().float()
            return x

    with pytest.raises(ExportError, match="data-dependent"):
        torch_frontend.export(DataDependent(), torch.randn(2, 4))


class _AuxHead(torch.nn.Module):
    """Inception v3's shape: an auxiliary head, run only in train mode, that a small input is too small for."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = torch.nn.Conv2d(3, 4, 3)
        self.bn = torch.nn.BatchNorm2d(4)
        self.drop = torch.nn.Dropout(0.5)
        self.aux = torch.nn.Linear(4, 2)
        self.fc = torch.nn.Linear(4, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
        x = torch.relu(self.bn(self.conv(x)))
        out = self.fc(self.drop(x.mean((2, 3))))
        if self.training:  # 3x3 maps: a 5x5 pool has no output
            return out, self.aux(torch.nn.functional.avg_pool2d(x, 5, 3).flatten(1))
        return out


def test_a_train_only_branch_that_fails_export_falls_back_to_containers_in_eval_mode() -> None:
    from finetuner import tailor

    model, x = _AuxHead(), torch.randn(4, 3, 5, 5)
    with pytest.warns(UserWarning, match="auxiliary heads"):
        graph = torch_frontend.export(model, sample_input=x)
    assert model.training and graph.extra["export_fallback"].startswith("containers in eval mode")
    ops = [n.op_type for n in graph.model.graph.node]
    assert "BatchNormalization" in ops and "Dropout" in ops and "AveragePool" not in ops  # leaves in train mode
    embedding = tailor.to_embedding(model, output_dim=None, normalize=False, sample_input=x)  # checked
    model.eval()
    with torch.no_grad():
        ref = torch.relu(model.bn(model.conv(x))).mean((2, 3))
        torch.testing.assert_close(embedding.eval()(x), ref, rtol=1e-5, atol=1e-6)
    embedding.train()
    assert embedding(x).shape == (4, 4)  # trains without the auxiliary head


def test_an_unchanged_model_is_exported_once_and_a_changed_one_again(monkeypatch: pytest.MonkeyPatch) -> None:
    """Trying several cuts exports once; new weights, a replaced layer, freezing or a patched forward re-export."""
    from finetuner import tailor

    calls = []
    real_export = torch.onnx.export
    monkeypatch.setattr(torch.onnx, "export", lambda *a, **k: calls.append(1) or real_export(*a, **k))
    model, sample = torch_zoo.build("small_cnn")
    first = torch_frontend.export(model, sample_input=sample)
    tailor.to_embedding(model, output_dim=8, sample_input=sample)
    tailor.to_embedding(model, output_dim=None, layer_name=tailor_layer(first), sample_input=sample)
    assert torch_frontend.export(model, sample_input=sample) is first and len(calls) == 1
    assert torch_frontend.export(model, sample_input=sample[:1]) is first  # the batch size is dynamic anyway
    with torch.no_grad():
        next(model.parameters()).add_(1.0)  # an in-place weight update (an optimiser step)
    second = torch_frontend.export(model, sample_input=sample)
    assert second is not first and len(calls) == 2
    next(model.parameters()).requires_grad_(False)
    assert torch_frontend.export(model, sample_input=sample).frozen and len(calls) == 3
    model.forward = lambda x: type(model).forward(model, x) * 2  # patched code
    third = torch_frontend.export(model, sample_input=sample)
    assert third is not second and len(calls) == 4


def test_a_method_patched_on_the_class_re_exports(monkeypatch: pytest.MonkeyPatch) -> None:
    class Scaled(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.fc = torch.nn.Linear(4, 3)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.fc(x)

    model, x = Scaled(), torch.randn(2, 4)
    first = torch_frontend.export(model, sample_input=x)
    assert torch_frontend.export(model, sample_input=x) is first
    monkeypatch.setattr(Scaled, "forward", lambda self, x: self.fc(x) * 2)  # the class's code, edited
    second = torch_frontend.export(model, sample_input=x)
    assert second is not first
    out = runtime.session(second.model).run(None, {second.input_names[0]: x.numpy()})[0]
    np.testing.assert_allclose(out, (model.fc(x) * 2).detach().numpy(), rtol=1e-5, atol=1e-6)


def tailor_layer(graph) -> str:
    """A cut candidate of the exported graph other than the default."""
    from tailor_ir.inspection import layer_table

    return next(r.name for r in layer_table(graph) if r.cut_candidate and not r.default_cut)


class _LayerDrop(torch.nn.Module):
    """Two blocks, each skipped at random in train mode (Wav2Vec2 / HuBERT's LayerDrop), with Dropout and BN."""

    def __init__(self) -> None:
        super().__init__()
        self.blocks = torch.nn.ModuleList([torch.nn.Linear(6, 6) for _ in range(2)])
        self.norm = torch.nn.BatchNorm1d(6)
        self.drop = torch.nn.Dropout(0.5)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for block in self.blocks:
            if self.training and torch.rand([]) < 0.5:  # data-dependent: torch.export cannot trace it
                continue
            x = x + block(x)
        return self.drop(self.norm(x))


def test_a_random_branch_in_train_mode_exports_with_only_torch_layers_in_train_mode() -> None:
    model = _LayerDrop()
    x = torch.randn(4, 6)
    with pytest.warns(UserWarning, match="LayerDrop"):
        graph = torch_frontend.export(model, x)
    ops = [n.op_type for n in graph.model.graph.node]
    assert ops.count("Dropout") == 1 and ops.count("BatchNormalization") == 1  # still train-mode layers
    assert ops.count("Gemm") + ops.count("MatMul") == 2  # both blocks, their eval-mode path
    assert model.training  # the user's model is left as it was
    with torch.no_grad():
        expected = model.eval()(x).numpy()
    np.testing.assert_allclose(runtime.run(graph, {"x": x.numpy()})[0], expected, rtol=1e-5, atol=1e-6)


def test_a_bias_free_conv3d_exports_without_the_exporters_malformed_zero_bias() -> None:
    model = torch.nn.Sequential(torch.nn.Conv3d(3, 4, (1, 3, 3), bias=False), torch.nn.ReLU()).eval()
    x = torch.randn(2, 3, 2, 6, 6)
    graph = torch_frontend.export(model, x)
    conv = next(n for n in graph.model.graph.node if n.op_type == "Conv")
    assert list(conv.input) == ["input", "0.weight"]
    assert "Expand" not in {n.op_type for n in graph.model.graph.node}
    with torch.no_grad():
        expected = model(x).numpy()
    np.testing.assert_allclose(runtime.run(graph, {"input": x.numpy()})[0], expected, rtol=1e-5, atol=1e-6)
