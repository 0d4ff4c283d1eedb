"""The exported-model metadata contract: props round trip, safe output renaming, atomic writes, tokenizer sidecar."""

from __future__ import annotations

import json
import re
import shutil

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper

from finetuner.onnx_meta import (
    EmbeddingModelMeta,
    InputSpec,
    ModelMetadataError,
    TextEncoder,
    graph_inputs,
    tokenizer_dir,
    write_embedding_model,
)


def _linear_model(inner_name: str = "embedding") -> onnx.ModelProto:
    """x (B, 3) -> MatMul -> Relu -> out (B, 2); the MatMul's output is called ``inner_name``."""
    weight = helper.make_tensor("w", TensorProto.FLOAT, [3, 2], np.arange(6, dtype=np.float32).tolist())
    graph = helper.make_graph(
        [helper.make_node("MatMul", ["x", "w"], [inner_name]), helper.make_node("Relu", [inner_name], ["out"])],
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 3])],
        [helper.make_tensor_value_info("out", TensorProto.FLOAT, ["batch", 2])],
        [weight],
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])


def test_props_round_trip_as_strings_and_json():
    meta = EmbeddingModelMeta(
        "torch", 2, (InputSpec("x", "float32", ("batch", 3)),), {"kind": "image", "layout": "NCHW"}, True
    )
    props = meta.to_props()
    assert all(isinstance(v, str) for v in props.values())
    assert props["finetuner.normalized"] == "true"
    assert json.loads(props["finetuner.inputs"]) == [{"name": "x", "dtype": "float32", "shape": ["batch", 3]}]
    assert json.loads(props["finetuner.preprocess"]) == {"kind": "image", "layout": "NCHW"}
    assert props["finetuner.version"]
    assert EmbeddingModelMeta.from_props(props) == meta


def test_missing_metadata_is_named():
    props = EmbeddingModelMeta.for_model(_linear_model(), "torch").to_props()
    del props["finetuner.output_dim"]
    with pytest.raises(ModelMetadataError, match="finetuner.output_dim"):
        EmbeddingModelMeta.from_props(props)


def test_text_meta_requires_tokenizer():
    with pytest.raises(ModelMetadataError, match="tokenizer"):
        EmbeddingModelMeta("torch", 2, (), {"kind": "text"})


def test_write_renames_output_past_an_inner_value_of_the_same_name(tmp_path):
    model = _linear_model(inner_name="embedding")
    meta = EmbeddingModelMeta.for_model(model, "torch", {"kind": "vector"})
    assert meta.output_dim == 2 and graph_inputs(model) == [InputSpec("x", "float32", ("batch", 3))]
    path = write_embedding_model(model, meta, tmp_path / "m.onnx")
    written = onnx.load(str(path))
    assert [o.name for o in written.graph.output] == ["embedding"]
    assert EmbeddingModelMeta.from_model(written) == meta
    x = np.array([[1, -2, 3]], np.float32)
    out = ort.InferenceSession(str(path)).run(["embedding"], {"x": x})[0]
    np.testing.assert_allclose(out, np.maximum(x @ np.arange(6, dtype=np.float32).reshape(3, 2), 0))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.onnx"]  # no temp files left behind


def test_failed_write_keeps_the_previous_file(tmp_path):
    good = _linear_model()
    meta = EmbeddingModelMeta.for_model(good, "torch")
    path = write_embedding_model(good, meta, tmp_path / "m.onnx")
    before = path.read_bytes()
    broken = _linear_model()
    broken.graph.node[0].input[1] = "no_such_weight"
    with pytest.raises(onnx.checker.ValidationError):
        write_embedding_model(broken, meta, path)
    assert path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.onnx"]


def test_tokenizer_sidecar_matches_transformers(tmp_path):
    from models.torch_zoo import minilm_path, minilm_tokenizer

    hf = minilm_tokenizer()
    model = _linear_model()
    meta = EmbeddingModelMeta("torch", 2, tuple(graph_inputs(model)), {"kind": "text", "tokenizer": "x", "max_length": 16})
    with pytest.raises(ModelMetadataError, match="tokenizer"):
        write_embedding_model(model, meta, tmp_path / "text.onnx")
    path = write_embedding_model(model, meta, tmp_path / "text.onnx", tokenizer=minilm_path())
    folder = tokenizer_dir(path)
    assert re.fullmatch(r"text\.tokenizer-[0-9a-f]{12}", folder.name) and (folder / "tokenizer.json").is_file()
    assert EmbeddingModelMeta.from_file(path).preprocess["tokenizer"] == folder.name
    texts = ["a photo of a cat", "neural search with fine-tuned embeddings " * 5]
    ours = TextEncoder(folder, max_length=16)(texts)
    ref = hf(texts, padding=True, truncation=True, max_length=16, return_tensors="np")
    for key in ("input_ids", "attention_mask"):
        np.testing.assert_array_equal(ours[key], ref[key])
    assert ours["input_ids"].shape == (2, 16) and ours["input_ids"].dtype == np.int64


def test_a_new_tokenizer_never_overwrites_the_folder_the_current_model_uses(tmp_path):
    """Model and tokenizer switch in one rename (the model's): a crash before it leaves the old, matching pair."""
    from models.torch_zoo import minilm_path

    model = _linear_model()
    meta = EmbeddingModelMeta("torch", 2, tuple(graph_inputs(model)), {"kind": "text", "tokenizer": "x", "max_length": 16})
    path = write_embedding_model(model, meta, tmp_path / "text.onnx", tokenizer=minilm_path())
    first = tokenizer_dir(path)
    before = {p.name: p.read_bytes() for p in first.iterdir()}
    changed = tmp_path / "changed-tokenizer"
    shutil.copytree(first, changed)
    config = json.loads((changed / "tokenizer.json").read_text())
    config["truncation"] = {"direction": "Right", "max_length": 7, "strategy": "LongestFirst", "stride": 0}
    (changed / "tokenizer.json").write_text(json.dumps(config))
    broken = onnx.ModelProto()
    broken.CopyFrom(model)
    broken.graph.node[0].op_type = "NoSuchOp"  # fails the checker after the new tokenizer is in place
    with pytest.raises(onnx.checker.ValidationError):
        write_embedding_model(broken, meta, path, tokenizer=changed)
    assert tokenizer_dir(path) == first and {p.name: p.read_bytes() for p in first.iterdir()} == before
    path = write_embedding_model(model, meta, path, tokenizer=changed)
    second = tokenizer_dir(path)
    assert second != first and not first.exists(), "the previous version's folder goes after the switch"
    assert json.loads((second / "tokenizer.json").read_text())["truncation"]["max_length"] == 7
