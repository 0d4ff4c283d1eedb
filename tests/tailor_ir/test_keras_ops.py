"""The Keras backend bugs issue 13 lists, each held by the ONNX node case that showed it (``tailor_ir.conformance``).

The whole conformance suite runs in ``test_conformance.py``; these name the bugs so a regression reads as one.
"""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper

from tailor_ir import conformance
from tailor_ir.backends import keras as keras_backend
from tailor_ir.errors import UnsupportedDtypeError
from tailor_ir.graph import Graph

BUGS = {
    "SAME_LOWER pads the start (MaxPool, AveragePool, Conv)": [
        "test_maxpool_2d_same_lower", "test_averagepool_2d_same_lower", "test_conv_with_autopad_same",
    ],
    "float64 and float16 are computed and returned as given": [
        "test_max_float64", "test_max_float16", "test_mod_float_edge_cases_fmod_0_float64", "test_castlike_FLOAT_to_DOUBLE",
    ],
    "Mod fmod=1": ["test_mod_mixed_sign_float32", "test_mod_int64_fmod"],
    "rank-0 inputs": ["test_clip_example", "test_pow_bcast_scalar", "test_gemm_default_scalar_bias"],
    "run-time shapes and axes": [
        "test_reshape_negative_dim", "test_expand_dim_changed", "test_constantofshape_float_ones",
        "test_unsqueeze_negative_axes", "test_reduce_sum_keepdims_example", "test_reduce_mean_do_not_keepdims_example",
        "test_slice_negative_axes",
    ],
    "pools: ceil_mode, dilated strides, padding excluded from the average": [
        "test_maxpool_2d_ceil", "test_averagepool_2d_pads", "test_averagepool_3d_dilations_large_count_include_pad_is_1_ceil_mode_is_False",
    ],
}


@pytest.mark.parametrize("name", [n for names in BUGS.values() for n in names])
def test_listed_bug_case_passes(name: str) -> None:
    outcome = conformance.run_case(conformance.case_named(name), conformance.backend_runner("keras"))
    assert outcome.status == "pass", outcome.detail


def test_a_type_tensorflow_lacks_is_refused_when_rehydrating() -> None:
    node = helper.make_node("Cast", ["x"], ["y"], to=TensorProto.FLOAT8E4M3FNUZ)
    graph = helper.make_graph(
        [node], "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT8E4M3FNUZ, [2])],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 21)])
    with pytest.raises(UnsupportedDtypeError, match="float8e4m3fnuz"):
        keras_backend.rehydrate(Graph(model=model), check=False)


def test_float64_graph_keeps_float64() -> None:
    node = helper.make_node("Mul", ["x", "x"], ["y"])
    graph = helper.make_graph(
        [node], "g", [helper.make_tensor_value_info("x", TensorProto.DOUBLE, ["n", 3])],
        [helper.make_tensor_value_info("y", TensorProto.DOUBLE, ["n", 3])],
    )
    g = Graph(model=helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]))
    x = np.array([[1 + 1e-12, 2, 3]], dtype=np.float64)
    (y,) = keras_backend.numpy_forward(keras_backend.rehydrate(g, check=False), g)({"x": x})
    assert y.dtype == np.float64
    assert y[0, 0] == x[0, 0] * x[0, 0]  # float32 would round 1 + 1e-12 to 1
    assert onnx.checker.check_model(g.model) is None
