"""Torch backend regressions: the bugs ONNX's conformance cases found, the dispatch, train-mode randomness and
sequences (each checked against onnxruntime or the native module)."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
import torch
from onnx import TensorProto, helper, numpy_helper

from tailor_ir import runtime
from tailor_ir.backends import torch as torch_backend
from tailor_ir.errors import UnsupportedDtypeError, UnsupportedOpError
from tailor_ir.graph import Graph

RNG = np.random.default_rng(0)


def _graph(nodes, inputs, outputs, inits=(), opset=18, weights=None) -> Graph:
    g = helper.make_graph(nodes, "g", inputs, outputs, list(inits))
    model = helper.make_model(g, opset_imports=[helper.make_opsetid("", opset)])
    onnx.checker.check_model(model)
    return Graph(model, weights=weights)


def _run(graph: Graph, *arrays: np.ndarray) -> list[np.ndarray]:
    module = torch_backend.rehydrate(graph, check=False)
    return torch_backend.numpy_forward(module, graph)(dict(zip(graph.input_names, arrays)))


def _vi(name: str, elem: int, shape: list) -> onnx.ValueInfoProto:
    return helper.make_tensor_value_info(name, elem, shape)


def test_batchnorm_of_a_foreign_onnx_file_keeps_its_statistics_as_buffers() -> None:
    c = 3
    inits = [numpy_helper.from_array(RNG.standard_normal(c).astype(np.float32), n) for n in ("s", "b", "m")]
    inits.append(numpy_helper.from_array(RNG.uniform(0.5, 2, c).astype(np.float32), "v"))
    node = helper.make_node("BatchNormalization", ["x", "s", "b", "m", "v"], ["y"], name="bn")
    graph = _graph([node], [_vi("x", TensorProto.FLOAT, [2, c, 4])], [_vi("y", TensorProto.FLOAT, [2, c, 4])], inits)
    assert {"m", "v"} <= graph.weights  # a foreign file: every float initializer looks like a weight
    module = torch_backend.rehydrate(graph)  # checks against onnxruntime
    assert set(module.weight_names) == {"s", "b"}
    state = torch_backend.current_initializers(module)
    np.testing.assert_array_equal(state["m"], numpy_helper.to_array(inits[2]))


def test_a_graph_output_folded_to_a_constant() -> None:
    nodes = [helper.make_node("Shape", ["x"], ["dims"], start=1), helper.make_node("Relu", ["x"], ["r"])]
    graph = _graph(nodes, [_vi("x", TensorProto.FLOAT, [2, 3, 4])],
                   [_vi("dims", TensorProto.INT64, [2]), _vi("r", TensorProto.FLOAT, [2, 3, 4])])
    x = RNG.standard_normal((2, 3, 4)).astype(np.float32)
    dims, relu = _run(graph, x)
    np.testing.assert_array_equal(dims, [3, 4])
    np.testing.assert_array_equal(relu, np.maximum(x, 0))


def test_cumsum_without_attributes_runs_forward_in_the_input_dtype() -> None:
    axis = numpy_helper.from_array(np.array(0, dtype=np.int32), "axis")
    graph = _graph([helper.make_node("CumSum", ["x", "axis"], ["y"])], [_vi("x", TensorProto.INT32, [3])],
                   [_vi("y", TensorProto.INT32, [3])], [axis])
    (y,) = _run(graph, np.array([1, 2, 3], dtype=np.int32))
    assert y.dtype == np.int32
    np.testing.assert_array_equal(y, [1, 3, 6])


def test_lstm_with_only_the_last_hidden_state_returns_y_h() -> None:
    hidden, inp = 3, 2
    w = numpy_helper.from_array(RNG.standard_normal((1, 4 * hidden, inp)).astype(np.float32), "w")
    r = numpy_helper.from_array(RNG.standard_normal((1, 4 * hidden, hidden)).astype(np.float32), "r")
    node = helper.make_node("LSTM", ["x", "w", "r"], ["", "y_h"], hidden_size=hidden)
    graph = _graph([node], [_vi("x", TensorProto.FLOAT, [5, 2, inp])], [_vi("y_h", TensorProto.FLOAT, [1, 2, hidden])],
                   [w, r], weights=frozenset())
    x = RNG.standard_normal((5, 2, inp)).astype(np.float32)
    (got,) = _run(graph, x)
    assert got.shape == (1, 2, hidden)
    runtime.assert_close(got, runtime.run(graph, [x])[0], rtol=1e-5)


@pytest.mark.parametrize(("positive", "negative", "expected"), [(1, 0, [False, True, False]),
                                                                 (0, 1, [True, False, False])])
def test_isinf_honours_detect_positive_and_negative(positive: int, negative: int, expected: list[bool]) -> None:
    node = helper.make_node("IsInf", ["x"], ["y"], detect_positive=positive, detect_negative=negative)
    graph = _graph([node], [_vi("x", TensorProto.FLOAT, [3])], [_vi("y", TensorProto.BOOL, [3])])
    (y,) = _run(graph, np.array([-np.inf, np.inf, 1.0], dtype=np.float32))
    np.testing.assert_array_equal(y, expected)


def test_flatten_axis_zero_gives_one_row() -> None:
    graph = _graph([helper.make_node("Flatten", ["x"], ["y"], axis=0)], [_vi("x", TensorProto.FLOAT, [2, 3])],
                   [_vi("y", TensorProto.FLOAT, [1, 6])])
    x = RNG.standard_normal((2, 3)).astype(np.float32)
    np.testing.assert_array_equal(_run(graph, x)[0], x.reshape(1, 6))


def test_cast_to_a_four_bit_type_is_refused_at_rehydrate_time() -> None:
    node = helper.make_node("Cast", ["x"], ["y"], to=TensorProto.INT4)
    graph = _graph([node], [_vi("x", TensorProto.FLOAT, [4])], [_vi("y", TensorProto.INT4, [4])], opset=21)
    with pytest.raises(UnsupportedDtypeError, match="int4"):
        torch_backend.rehydrate(graph, check=False)


def test_dispatch_is_ours_first_and_leaves_onnx2torch_untouched() -> None:
    from onnx2torch.node_converters import get_converter

    from tailor_ir.backends.torch.converters.tensor import convert_cumsum
    from tailor_ir.backends.torch.registry import find

    assert find("CumSum", 14) is convert_cumsum
    assert get_converter(operation_type="CumSum", version=14) is not convert_cumsum  # onnx2torch's own, unpatched
    assert find("Relu", 14) is get_converter(operation_type="Relu", version=14)  # onnx2torch's, via its public API
    assert find("NoSuchOp", 18) is None


def test_raw_random_op_is_refused_with_the_reason() -> None:
    node = helper.make_node("RandomNormalLike", ["x"], ["n"])
    graph = _graph([node, helper.make_node("Add", ["x", "n"], ["y"])], [_vi("x", TensorProto.FLOAT, [2])],
                   [_vi("y", TensorProto.FLOAT, [2])])
    with pytest.raises(UnsupportedOpError, match="random numbers in eval mode too"):
        torch_backend.rehydrate(graph, check=False)


def _export(model: torch.nn.Module, sample: torch.Tensor) -> Graph:
    from tailor_ir.frontends import torch as torch_frontend

    return torch_frontend.export(model, sample_input=sample)


def test_stochastic_depth_is_random_in_train_mode_and_the_identity_in_eval_mode() -> None:
    from torchvision.ops import StochasticDepth

    class Block(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.conv = torch.nn.Conv2d(3, 3, 1)
            self.drop = StochasticDepth(0.5, "row")

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return x + self.drop(self.conv(x))

    torch.manual_seed(0)
    model, x = Block(), torch.randn(16, 3, 2, 2)
    _assert_a_random_drop_in_train_mode_and_its_mean_in_eval_mode(model, x)


class _DropPathBlock(torch.nn.Module):
    """A residual branch behind Hugging Face's drop path (``input.div(keep) * floor(rand + keep)``)."""

    def __init__(self, mask_as_factor: bool = True) -> None:
        from transformers.models.swin.modeling_swin import SwinDropPath

        super().__init__()
        self.conv = torch.nn.Conv2d(3, 3, 1)
        self.drop = SwinDropPath(0.5)
        self.mask_as_factor = mask_as_factor

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.mask_as_factor:
            return x + self.drop(self.conv(x))
        keep = torch.floor(0.5 + torch.rand(x.shape[0], 1, 1, 1, dtype=x.dtype))
        return x + self.conv(x) + keep  # the mask is added, not a factor: no eval-mode value


def test_hugging_face_drop_path_is_random_in_train_mode_and_the_identity_in_eval_mode() -> None:
    torch.manual_seed(0)
    model, x = _DropPathBlock(), torch.randn(16, 3, 2, 2)
    _assert_a_random_drop_in_train_mode_and_its_mean_in_eval_mode(model, x)


def test_a_floor_draw_that_is_not_a_factor_is_refused() -> None:
    graph = _export(_DropPathBlock(mask_as_factor=False), torch.randn(4, 3, 2, 2))
    assert any(n.op_type == "RandomUniformLike" for n in graph.model.graph.node)
    with pytest.raises(UnsupportedOpError, match="random numbers in eval mode too"):
        torch_backend.rehydrate(graph, check=False)


def test_chunk_and_split_become_tuples_of_tensors() -> None:
    class Gate(torch.nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            a, b = torch.chunk(x, 2, dim=1)
            first, rest = torch.split(x, [1, 3], dim=1)
            return a * torch.sigmoid(b) + rest[:, :2] * first

    x = torch.randn(2, 4, 3)
    module = torch_backend.rehydrate(_export(Gate(), x))
    with torch.no_grad():
        torch.testing.assert_close(module(x), Gate()(x))


def _assert_a_random_drop_in_train_mode_and_its_mean_in_eval_mode(model: torch.nn.Module, x: torch.Tensor) -> None:
    """``model``'s layer ``drop`` (a residual branch behind a per-row random draw, 16 rows) exports without raw
    random ops, is marked in the layer table, equals the eval-mode model when rehydrated, and drops some rows (not
    all) in train mode."""
    graph = _export(model, x)
    assert not any(n.op_type.startswith("Random") for n in graph.model.graph.node)
    from tailor_ir.inspection import layer_table

    drop_row = next(r for r in layer_table(graph) if r.name == "drop")
    assert any(op.startswith("RandomDraw(train: random, eval/check") for op in drop_row.op_types)
    module = torch_backend.rehydrate(graph)  # eval mode, checked against onnxruntime
    with torch.no_grad():
        torch.testing.assert_close(module(x), model.eval()(x), rtol=1e-5, atol=1e-6)
        module.train()
        kept = (module(x) - x).flatten(1).abs().sum(1) > 0  # rows whose residual branch survived
    assert 0 < int(kept.sum()) < 16
