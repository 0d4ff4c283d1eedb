"""Graph persistence: checked loads, atomic saves, external data confined to the model's folder."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx_graphs import cnn_graph

from tailor_ir.errors import InvalidGraphError
from tailor_ir.graph import Graph
from tailor_ir.inspection import layer_table
from tailor_ir.passes import embedding_head


def test_save_and_load_keep_layer_map_weights_and_frozen(tmp_path):
    emb = embedding_head(cnn_graph(), output_dim=4, freeze=["conv"])
    path = emb.save(tmp_path / "m.onnx")
    loaded = Graph.load(path)
    assert dict(loaded.layer_map) == dict(emb.layer_map)
    assert loaded.weights == emb.weights and loaded.frozen == emb.frozen
    assert loaded.framework == "torch"
    assert [p.name for p in tmp_path.iterdir()] == ["m.onnx"]  # no temp files left


def test_truncated_file_is_a_clear_error(tmp_path):
    data = cnn_graph().to_model_proto().SerializeToString()
    bad = tmp_path / "cut.onnx"
    bad.write_bytes(data[: len(data) // 2])
    with pytest.raises(InvalidGraphError, match="cut.onnx"):
        Graph.load(bad)


def test_garbage_file_is_a_clear_error(tmp_path):
    bad = tmp_path / "junk.onnx"
    bad.write_bytes(b"this is not onnx at all")
    with pytest.raises(InvalidGraphError, match="junk.onnx"):
        Graph.load(bad)


def test_missing_file_is_a_clear_error(tmp_path):
    with pytest.raises(InvalidGraphError, match="no such ONNX file"):
        Graph.load(tmp_path / "absent.onnx")


def test_checker_failure_writes_nothing(tmp_path):
    graph = cnn_graph()
    model = graph.to_model_proto()
    model.graph.node[0].input[1] = "does_not_exist"
    with pytest.raises(InvalidGraphError, match="checker"):
        Graph(model, layer_map=graph.layer_map).save(tmp_path / "bad.onnx")
    assert list(tmp_path.iterdir()) == []


def test_external_data_outside_the_model_folder_is_refused(tmp_path):
    model = cnn_graph().to_model_proto()
    tensor = next(i for i in model.graph.initializer if i.name == "conv.weight")
    (tmp_path / "secret.bin").write_bytes(np.zeros(4 * 3 * 3 * 3, dtype=np.float32).tobytes())
    tensor.ClearField("raw_data")
    del tensor.float_data[:]
    tensor.data_location = onnx.TensorProto.EXTERNAL
    tensor.external_data.add(key="location", value="../secret.bin")
    inner = tmp_path / "inner"
    inner.mkdir()
    (inner / "m.onnx").write_bytes(model.SerializeToString())
    with pytest.raises(InvalidGraphError, match="outside the model's folder"):
        Graph.load(inner / "m.onnx")


def test_layer_table_counts_parameters_and_marks_cuts():
    rows = {r.name: r for r in layer_table(embedding_head(cnn_graph(), output_dim=4, freeze=["conv"]))}
    assert rows["conv"].params == 4 * 3 * 3 * 3 + 4 and rows["conv"].trainable == "no"
    assert rows["block"].params == 6 * 4 * 3 * 3 and rows["block"].trainable == "yes"
    assert rows["block.conv2"].depth == 1 and rows["block.conv2"].cut_candidate
    assert rows["embedding_head.projection"].params == 4 * 6 + 4
