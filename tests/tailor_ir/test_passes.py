"""Each surgery pass alone, on hand-built ONNX graphs, checked with onnxruntime."""

from __future__ import annotations

import numpy as np
import pytest
from onnx_graphs import cnn_graph, token_graph, with_outputs

from tailor_ir import runtime
from tailor_ir.errors import NoCutError, UnknownLayerError
from tailor_ir.passes import (
    HEAD,
    Freeze,
    Normalize,
    Pool,
    Project,
    Sequential,
    Truncate,
    classifier_input,
    default_cut,
    embedding_head,
    layer_outputs,
)

RNG = np.random.default_rng(0)
X = RNG.standard_normal((3, 3, 8, 8)).astype(np.float32)
IDS = RNG.integers(0, 10, size=(2, 5)).astype(np.int64)
MASK = np.array([[1, 1, 1, 0, 0], [1, 1, 1, 1, 1]], dtype=np.int64)


def activations(graph, names, feed):
    outs = runtime.run(with_outputs(graph, names), feed)
    return dict(zip([*graph.output_names, *names], outs))


def test_classifier_input_walks_back_through_softmax_to_the_weighted_gemm():
    graph = cnn_graph()
    assert classifier_input(graph) == "flat"
    assert default_cut(graph) == "flat"


def _squeezenet_style(kernel: int) -> object:
    """conv(3->6) -> relu -> [dropout] -> conv(6->5, kernel) -> relu -> global pool -> flatten: class scores."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    from tailor_ir.graph import Graph

    inits = [
        numpy_helper.from_array(RNG.standard_normal((6, 3, 3, 3)).astype(np.float32), "features.weight"),
        numpy_helper.from_array(RNG.standard_normal((5, 6, kernel, kernel)).astype(np.float32), "final_conv.weight"),
        numpy_helper.from_array(RNG.standard_normal(5).astype(np.float32), "final_conv.bias"),
    ]
    nodes = [
        helper.make_node("Conv", ["x", "features.weight"], ["f"], name="n_features", pads=[1, 1, 1, 1]),
        helper.make_node("Relu", ["f"], ["fr"], name="n_frelu"),
        helper.make_node("Dropout", ["fr"], ["d"], name="n_drop"),
        helper.make_node("Conv", ["d", "final_conv.weight", "final_conv.bias"], ["c"], name="n_final",
                         kernel_shape=[kernel, kernel]),
        helper.make_node("Relu", ["c"], ["cr"], name="n_crelu"),
        helper.make_node("GlobalAveragePool", ["cr"], ["p"], name="n_pool"),
        helper.make_node("Flatten", ["p"], ["scores"], name="n_flat", axis=1),
    ]
    g = helper.make_graph(nodes, "squeeze", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["b", 3, 8, 8])],
                          [helper.make_tensor_value_info("scores", TensorProto.FLOAT, ["b", 5])], inits)
    model = helper.make_model(g, opset_imports=[helper.make_opsetid("", 18)])
    onnx.checker.check_model(model)
    return Graph(model, framework="torch", weights=frozenset(i.name for i in inits))


def test_a_final_pointwise_conv_pooled_into_the_output_is_the_classifier():
    graph = _squeezenet_style(kernel=1)
    assert classifier_input(graph) == "d"
    assert default_cut(graph) == "d"


def test_a_final_spatial_conv_is_not_taken_for_a_classifier():
    graph = _squeezenet_style(kernel=3)
    assert classifier_input(graph) is None
    assert default_cut(graph) == "scores"


def _fcn_style(kernel: int) -> object:
    """conv(3->6) -> relu -> conv(6->5, kernel) -> Resize to the input size: per-pixel class scores (FCN)."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    from tailor_ir.graph import Graph

    inits = [
        numpy_helper.from_array(RNG.standard_normal((6, 3, 3, 3)).astype(np.float32), "backbone.weight"),
        numpy_helper.from_array(RNG.standard_normal((5, 6, kernel, kernel)).astype(np.float32), "classifier.weight"),
        numpy_helper.from_array(np.array([1, 1, 2, 2], dtype=np.float32), "scales"),
    ]
    nodes = [
        helper.make_node("Conv", ["x", "backbone.weight"], ["f"], name="n_backbone", pads=[1, 1, 1, 1], strides=[2, 2]),
        helper.make_node("Relu", ["f"], ["fr"], name="n_relu"),
        helper.make_node("Conv", ["fr", "classifier.weight"], ["c"], name="n_classifier", kernel_shape=[kernel, kernel],
                         pads=[kernel // 2] * 4),
        helper.make_node("Resize", ["c", "", "scales"], ["out"], name="n_upsample", mode="linear"),
    ]
    g = helper.make_graph(nodes, "fcn", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["b", 3, 8, 8])],
                          [helper.make_tensor_value_info("out", TensorProto.FLOAT, ["b", 5, 8, 8])], inits)
    model = helper.make_model(g, opset_imports=[helper.make_opsetid("", 18)])
    onnx.checker.check_model(model)
    return Graph(model, framework="torch", weights=frozenset(("backbone.weight", "classifier.weight")))


def test_a_final_pointwise_conv_upsampled_into_the_output_is_the_per_pixel_classifier():
    graph = _fcn_style(kernel=1)
    assert classifier_input(graph) == "fr"
    emb = embedding_head(graph, output_dim=None, normalize=False)  # cut there, mean over space
    features = runtime.run(with_outputs(graph, ["fr"]), {"x": X})[1]
    np.testing.assert_allclose(runtime.run(emb, {"x": X})[0], features.mean(axis=(2, 3)), rtol=1e-5, atol=1e-6)


def test_an_upsampled_spatial_conv_is_not_taken_for_a_per_pixel_classifier():
    graph = _fcn_style(kernel=3)
    assert classifier_input(graph) is None
    assert default_cut(graph) == "out"


def test_model_without_classifier_is_cut_at_its_final_output():
    graph = token_graph()
    assert classifier_input(graph) is None
    assert default_cut(graph) == "hidden"


def test_layer_outputs_are_the_values_read_outside_the_layer():
    graph = cnn_graph()
    assert layer_outputs(graph, "block") == ["r2"]
    assert layer_outputs(graph, "block.conv2") == ["c2"]
    assert layer_outputs(graph, "pool") == ["flat"]


def test_truncate_at_layer_computes_the_original_activation():
    graph = cnn_graph()
    cut = Truncate(layer="block.conv2").call(graph)
    assert cut.modified and cut.graph.output_names == ["c2"]
    assert {n.name for n in cut.graph.model.graph.node} == {"n_conv", "n_relu", "n_conv2"}
    assert cut.graph.weights == {"conv.weight", "conv.bias", "block.conv2.weight"}
    ref = activations(graph, ["c2"], {"x": X})["c2"]
    np.testing.assert_allclose(runtime.run(cut.graph, {"x": X})[0], ref, rtol=1e-5)


def test_truncate_does_not_modify_its_input_graph():
    graph = cnn_graph()
    before = graph.model.SerializeToString()
    Truncate(layer="conv").call(graph)
    assert graph.model.SerializeToString() == before


def test_unknown_layer_lists_the_closest_names():
    with pytest.raises(UnknownLayerError) as info:
        Truncate(layer="block.conv").call(cnn_graph())
    assert "block.conv2" in str(info.value) and "display" in str(info.value)


def test_unknown_tensor_is_a_clear_error():
    with pytest.raises(UnknownLayerError, match="tensor name 'nope'"):
        Truncate(tensor="nope").call(cnn_graph())


def test_mean_pooling_of_feature_maps_is_global_average():
    graph = Truncate(layer="block").call(cnn_graph()).graph
    pooled = Pool("auto").call(graph).graph
    out = runtime.run(pooled, {"x": X})[0]
    ref = activations(cnn_graph(), ["r2"], {"x": X})["r2"].mean(axis=(2, 3))
    np.testing.assert_allclose(out, ref, rtol=1e-5, atol=1e-6)
    assert pooled.shape_of(pooled.output_names[0]) == ("batch", 6)


def test_flatten_pooling_keeps_every_feature():
    graph = Truncate(layer="block").call(cnn_graph()).graph
    out = runtime.run(Pool("flatten").call(graph).graph, {"x": X})[0]
    ref = activations(cnn_graph(), ["r2"], {"x": X})["r2"].reshape(3, -1)
    np.testing.assert_allclose(out, ref, rtol=1e-6)


def test_auto_pooling_of_tokens_is_masked_mean():
    graph = token_graph()
    pool = Pool("auto")
    assert pool.resolve(graph) == "masked_mean"
    out = runtime.run(pool.call(graph).graph, {"input_ids": IDS, "attention_mask": MASK})[0]
    hidden = runtime.run(graph, {"input_ids": IDS, "attention_mask": MASK})[0]
    m = MASK[:, :, None].astype(np.float32)
    np.testing.assert_allclose(out, (hidden * m).sum(1) / m.sum(1), rtol=1e-5, atol=1e-6)


def test_cls_pooling_takes_the_first_token():
    graph = token_graph()
    out = runtime.run(Pool("cls").call(graph).graph, {"input_ids": IDS, "attention_mask": MASK})[0]
    hidden = runtime.run(graph, {"input_ids": IDS, "attention_mask": MASK})[0]
    np.testing.assert_allclose(out, hidden[:, 0], rtol=1e-6)


def test_masked_mean_without_a_mask_input_says_what_is_missing():
    graph = Truncate(layer="block").call(cnn_graph()).graph
    with pytest.raises(ValueError, match="attention-mask"):
        Pool("masked_mean").call(graph)


def test_projection_is_a_deterministic_trainable_linear_layer():
    graph = Pool().call(Truncate(layer="block").call(cnn_graph()).graph).graph
    a = Project(7, seed=3).call(graph).graph
    b = Project(7, seed=3).call(graph).graph
    new = sorted(a.weights - graph.weights)
    assert new == [f"{HEAD}.projection.bias", f"{HEAD}.projection.weight"]
    w = a.initializer_array(f"{HEAD}.projection.weight")
    assert w.shape == (7, 6) and np.abs(w).max() <= 1 / np.sqrt(6)
    np.testing.assert_array_equal(w, b.initializer_array(f"{HEAD}.projection.weight"))
    pooled = runtime.run(graph, {"x": X})[0]
    bias = a.initializer_array(f"{HEAD}.projection.bias")
    np.testing.assert_allclose(runtime.run(a, {"x": X})[0], pooled @ w.T + bias, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("bad", [0, -3])
def test_projection_rejects_non_positive_output_dim(bad):
    with pytest.raises(ValueError, match="positive"):
        Project(bad)


def test_projection_rejects_non_int_output_dim():
    with pytest.raises(TypeError, match="positive int"):
        Project(2.5)


def test_normalize_gives_unit_norm():
    graph = Pool().call(Truncate(layer="block").call(cnn_graph()).graph).graph
    out = runtime.run(Normalize().call(graph).graph, {"x": X})[0]
    np.testing.assert_allclose(np.linalg.norm(out, axis=1), 1.0, rtol=1e-6)


def test_embedding_head_default_is_cut_pool_project_normalize():
    emb = embedding_head(cnn_graph(), output_dim=4)
    assert emb.output_names == ["embedding"]
    out = runtime.run(emb, {"x": X})[0]
    assert out.shape == (3, 4)
    np.testing.assert_allclose(np.linalg.norm(out, axis=1), 1.0, rtol=1e-6)
    assert "fc.weight" not in emb.initializers  # the classifier is gone


def test_embedding_head_without_projection_equals_the_classifier_input():
    emb = embedding_head(cnn_graph(), output_dim=None, normalize=False)
    ref = activations(cnn_graph(), ["flat"], {"x": X})["flat"]
    np.testing.assert_allclose(runtime.run(emb, {"x": X})[0], ref, rtol=1e-6)


def test_freeze_true_freezes_everything_but_the_head():
    emb = embedding_head(cnn_graph(), output_dim=4, freeze=True)
    assert emb.frozen == {"conv.weight", "conv.bias", "block.conv2.weight"}
    assert emb.weights - emb.frozen == {f"{HEAD}.projection.weight", f"{HEAD}.projection.bias"}


def test_freeze_list_freezes_only_those_layers():
    emb = embedding_head(cnn_graph(), output_dim=4, freeze=["conv"])
    assert emb.frozen == {"conv.weight", "conv.bias"}


def test_freeze_unknown_layer_is_an_error():
    with pytest.raises(UnknownLayerError, match="'conv'"):
        Freeze(["cnv"]).call(cnn_graph())


def test_sequential_reports_modified_and_leaves_input_alone():
    graph = cnn_graph()
    result = Sequential(Truncate(layer="block"), Pool("mean")).call(graph)
    assert result.modified and graph.output_names == ["probs"]
    assert not Sequential(Pool("none")).call(graph).modified


def test_no_cut_for_layers_without_float_outputs():
    graph = token_graph()
    with pytest.raises((NoCutError, UnknownLayerError)):
        Truncate(layer="missing").call(graph)


def test_rename_frees_an_internal_value_already_called_embedding() -> None:
    """A model with an ``embedding`` layer exports a value named ``embedding``; the output must not clash."""
    from onnx import TensorProto, helper

    from tailor_ir import runtime
    from tailor_ir.graph import Graph
    from tailor_ir.passes import embedding_head

    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 4])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", 4])
    nodes = [helper.make_node("Relu", ["x"], ["embedding"], name="relu"),
             helper.make_node("Neg", ["embedding"], ["y"], name="neg")]
    model = helper.make_model(helper.make_graph(nodes, "g", [x], [y]), opset_imports=[helper.make_opsetid("", 18)])
    graph = Graph(model, layer_map={"relu": "act", "neg": "out"}, framework="torch")
    head = embedding_head(graph, layer_name="out", pooling="none", output_dim=None, normalize=False)
    head.check()
    assert head.output_names == ["embedding"]
    feed = {"x": np.array([[1.0, -2.0, 3.0, -4.0]], np.float32)}
    np.testing.assert_array_equal(runtime.run(head.model, feed)[0], [[-1.0, 0.0, -3.0, 0.0]])


def test_a_pipeline_copies_the_model_once_and_never_edits_its_input(monkeypatch) -> None:
    """Passes after the first edit the model the pipeline made in place; the input and the result stay apart."""
    from tailor_ir.passes import base

    graph = cnn_graph()
    before = graph.model.SerializeToString()
    copies = []
    real = base.copy_model
    monkeypatch.setattr(base, "copy_model", lambda model: copies.append(model) or real(model))
    result = embedding_head(graph, layer_name="block", output_dim=3)
    assert copies == []  # Truncate builds a new model without copying the whole one; the rest edit it in place
    assert graph.model.SerializeToString() == before and graph.output_names == ["probs"]
    assert not result.scratch and result.output_names == ["embedding"]
    Pool("mean").call(Truncate(layer="block").call(graph).graph)  # a pass run alone copies its input
    assert len(copies) == 1


def test_layer_outputs_of_every_layer_match_a_per_layer_scan() -> None:
    """``Graph.layer_outputs`` (one pass over the nodes) agrees with scanning each layer's nodes on its own."""
    from tailor_ir.graph import FLOAT_TYPES

    for graph in (cnn_graph(), token_graph(), embedding_head(cnn_graph(), layer_name="block")):
        for layer in graph.layer_names:
            nodes = graph.nodes_of_layer(layer)
            inside = {id(n) for n in nodes}
            expected = [
                value for node in nodes for value in node.output
                if value and value in graph.dynamic_values
                and graph.elem_type_of(value) in (None, *FLOAT_TYPES)
                and (value in graph.output_names or any(id(c) not in inside for c in graph.consumers.get(value, [])))
            ]
            assert layer_outputs(graph, layer) == expected, layer
