"""``export(quantize='auto')``: fp32 or int8 chosen by measuring recall@10 and speed here, recorded in the model's
metadata with the CPU, logged when served; the recall rule refuses an int8 graph that retrieves worse."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
import torch

import finetuner
from finetuner.precision import (
    MAX_RECALL_LOSS,
    PRECISION_KEY,
    PrecisionChoice,
    choose_precision,
    cpu_description,
    recall_at_k,
)
from finetuner.serving.executor import startup_log
from finetuner.serving.model import EmbeddingRuntime

INT8_OPS = {"DynamicQuantizeLinear", "MatMulInteger", "DynamicQuantizeMatMul", "QAttention"}


def _clusters(n_per: int = 8, classes: int = 6, dim: int = 16, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Points around ``classes`` well separated centres, and their labels."""
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((classes, dim)) * 4
    labels = np.repeat(np.arange(classes), n_per)
    return (centres[labels] + rng.standard_normal((len(labels), dim))).astype(np.float32), labels


def _mlp(seed: int = 0) -> torch.nn.Module:
    torch.manual_seed(seed)
    return torch.nn.Sequential(torch.nn.Linear(16, 64), torch.nn.ReLU(), torch.nn.Linear(64, 32)).eval()


def _assert_follows_the_rule(choice: PrecisionChoice) -> None:
    loss = choice.recall_at_10["fp32"] - choice.recall_at_10["int8"]
    faster = choice.seconds_per_batch["int8"] < choice.seconds_per_batch["fp32"]
    assert choice.precision == ("int8" if loss <= MAX_RECALL_LOSS and faster else "fp32"), choice


def test_auto_records_a_choice_that_follows_the_rule_and_the_graph_it_chose(tmp_path):
    x, labels = _clusters()
    path = finetuner.export(_mlp(), tmp_path / "mlp.onnx", input_shape=(16,), quantize="auto",
                            calibration_data=(x, labels))
    model = onnx.load(str(path))
    choice = PrecisionChoice.from_model(model)
    assert choice is not None and choice.data == "calibration_data"
    assert set(choice.recall_at_10) == set(choice.seconds_per_batch) == {"fp32", "int8"}
    assert all(0.0 <= r <= 1.0 for r in choice.recall_at_10.values())
    assert choice.cpu == cpu_description() and choice.cpu["name"]
    _assert_follows_the_rule(choice)
    quantized = bool({node.op_type for node in model.graph.node} & INT8_OPS)
    assert quantized == (choice.precision == "int8")
    runtime = EmbeddingRuntime(path, threads=1)
    assert runtime.precision == choice
    log = "\n".join(startup_log(runtime))
    assert f"precision chosen at export: {choice.precision}" in log and choice.cpu["name"] in log


def test_an_int8_graph_that_retrieves_worse_is_refused_by_the_recall_rule():
    """The 'int8' candidate here is a real graph of the same shape whose weights keep one direction only (every
    embedding on one line): as fast, far worse neighbours."""
    from tailor_ir.frontends.torch import export

    x, labels = _clusters()
    graphs = []
    for weight in (torch.eye(16), torch.ones(16, 1) @ torch.randn(1, 16, generator=torch.Generator().manual_seed(0))):
        layer = torch.nn.Linear(16, 16, bias=False).eval()
        with torch.no_grad():
            layer.weight.copy_(weight)
        graphs.append(export(layer, input_shape=(16,)).model)
    good, scrambled = graphs
    choice = choose_precision(good, scrambled, (x, labels))
    assert choice.recall_at_10["fp32"] > choice.recall_at_10["int8"] + MAX_RECALL_LOSS
    assert choice.precision == "fp32" and "loses" in choice.reason


def test_recall_at_10_counts_relevant_neighbours_and_never_the_query_itself():
    corpus = np.eye(4)
    queries = np.array([[1.0, 0.1, 0, 0], [0, 1.0, 0, 0]])
    assert recall_at_k(queries, corpus, [{0}, {1}], k=1) == 1.0
    assert recall_at_k(queries, corpus, [{1}, {0}], k=1) == 0.0
    same = np.array([[1.0, 0], [0.9, 0.1], [0, 1.0]])
    assert recall_at_k(same, same, [{1}, {0}, set()], k=1, exclude_self=True) == 1.0


def test_a_text_model_without_data_is_calibrated_on_the_held_out_sample(tmp_path):
    from models.torch_zoo import minilm_tokenizer

    class Bag(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            torch.manual_seed(0)
            self.embed, self.proj = torch.nn.Embedding(30522, 32), torch.nn.Linear(32, 32)

        def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
            mask = attention_mask.unsqueeze(-1).to(torch.float32)
            return self.proj((self.embed(input_ids) * mask).sum(1) / mask.sum(1).clamp(min=1.0))

    tokenizer = minilm_tokenizer()
    sample = tokenizer(["a short text", "and a longer one"], padding=True, return_tensors="pt")
    path = finetuner.export(Bag().eval(), tmp_path / "bag.onnx", tokenizer=tokenizer, quantize="auto",
                            sample_input={"input_ids": sample["input_ids"], "attention_mask": sample["attention_mask"]})
    choice = PrecisionChoice.from_model(onnx.load(str(path)))
    assert choice is not None and choice.data.startswith("held-out sample")
    assert choice.recall_at_10["fp32"] > 0.5  # bags of words find most texts from 60% of their words
    _assert_follows_the_rule(choice)
    texts = ["served as it was exported", "with the precision the export chose"]
    runtime = EmbeddingRuntime(path, threads=1)
    assert runtime.embed_texts(texts).shape == (2, 32)


@pytest.mark.parametrize(
    "kwargs, message",
    [({"quantize": "fast"}, "quantize must be True, False or 'auto'"),
     ({"calibration_data": ([0.0], [0])}, "calibration_data is used only with quantize='auto'"),
     ({"quantize": "auto"}, "needs calibration_data for a model that does not take text")],
)
def test_wrong_arguments_are_refused_before_anything_is_written(tmp_path, kwargs, message):
    with pytest.raises(ValueError, match=message):
        finetuner.export(_mlp(), tmp_path / "m.onnx", input_shape=(16,), **kwargs)
    assert not (tmp_path / "m.onnx").exists()


def test_a_model_exported_without_auto_records_no_choice(tmp_path):
    path = finetuner.export(_mlp(), tmp_path / "plain.onnx", input_shape=(16,), quantize=True)
    model = onnx.load(str(path))
    assert PRECISION_KEY not in {p.key for p in model.metadata_props}
    assert {node.op_type for node in model.graph.node} & INT8_OPS


def test_cli_export_quantize_auto_asks_a_non_text_model_for_calibration_data(tmp_path, capsys):
    from finetuner.cli import main

    saved = finetuner.save(_mlp(), tmp_path / "saved.onnx", input_shape=(16,))
    assert main(["export", str(saved), str(tmp_path / "out.onnx"), "--quantize", "auto"]) == 1
    assert "needs calibration_data for a model that does not take text" in capsys.readouterr().err
    assert main(["export", str(saved), str(tmp_path / "int8.onnx"), "--quantize"]) == 0
    assert {node.op_type for node in onnx.load(str(tmp_path / "int8.onnx")).graph.node} & INT8_OPS
