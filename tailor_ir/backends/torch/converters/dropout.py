"""Dropout and train-mode random draws: random in train mode, their eval-mode value in eval mode.

Dropout's training_mode input, when constant, is dropped by the pre-pass (the module follows ``model.train()``);
a run-time training_mode makes the eval-mode value ambiguous and is refused unless the ratio is 0. The
frontend's marked Bernoulli draws (stochastic depth, ``frontends.train_random``) sample in train mode and give
their expectation in eval mode. Raw random ops (``RandomUniform*``, ``RandomNormal*``, ``Bernoulli``,
``Multinomial``) are random in eval mode too, so there is no value to check against: they are refused.
"""

from __future__ import annotations

import json

import torch
from onnx2torch.onnx_graph import OnnxGraph
from onnx2torch.onnx_node import OnnxNode
from torch import nn

from ..registry import converter
from ._common import OperationConverterResult, attr, const_array, result


class Dropout(nn.Module):
    """ONNX Dropout: random in train mode, identity in eval mode; optionally the boolean keep-mask too."""

    def __init__(self, p: float, with_mask: bool) -> None:
        super().__init__()
        self.p, self.with_mask = p, with_mask

    def forward(self, x: torch.Tensor, ratio: torch.Tensor | None = None) -> torch.Tensor | tuple[torch.Tensor, ...]:
        p = float(ratio) if ratio is not None and self.training else self.p  # a run-time ratio acts in train mode
        if not self.with_mask:
            return nn.functional.dropout(x, p, self.training)
        if not self.training or p == 0.0:
            return x, torch.ones_like(x, dtype=torch.bool)
        mask = torch.rand_like(x, dtype=torch.float32) >= p
        return x * mask / (1.0 - p), mask


@converter("Dropout", since=7)
def convert_dropout(node: OnnxNode, graph: OnnxGraph) -> OperationConverterResult:
    ratio = float(attr(node, "ratio", 0.5))
    inputs = (node.input_values[0],)
    if len(node.input_values) > 1 and node.input_values[1]:
        value = const_array(node.input_values[1], graph)
        if value is None:  # the eval-mode value (identity) does not depend on it
            inputs = (node.input_values[0], node.input_values[1])
        else:
            ratio = float(value)
    if len(node.input_values) > 2 and node.input_values[2] and (ratio != 0.0 or len(inputs) > 1):
        raise NotImplementedError(
            "Dropout whose training_mode is a run-time input: train or eval behaviour is decided per call, so "
            "the module's mode cannot stand for it"
        )
    with_mask = len(node.output_values) > 1 and bool(node.output_values[1])
    return result(Dropout(ratio, with_mask), node, inputs=inputs)


class TrainRandom(nn.Module):
    """A marked random draw: ``value`` expanded to ``shape`` in eval mode, a sample with that mean in train mode."""

    def __init__(self, kind: str) -> None:
        super().__init__()
        self.kind = kind

    def forward(self, value: torch.Tensor, shape: torch.Tensor) -> torch.Tensor:
        mean = value.expand([int(d) for d in shape.tolist()])
        if not self.training:
            return mean
        return torch.bernoulli(mean.float()).to(mean.dtype)


@converter("TrainRandom", since=1, domain="tailor_ir_torch")
def convert_train_random(node: OnnxNode, graph: OnnxGraph) -> OperationConverterResult:
    spec = json.loads(node.attributes["spec"] if isinstance(node.attributes["spec"], str)
                      else node.attributes["spec"].decode())
    if spec.get("kind") != "bernoulli":
        raise NotImplementedError(f"train-mode random draw of kind {spec.get('kind')!r}")
    return result(TrainRandom("bernoulli"), node)


def _refuse(node: OnnxNode, graph: OnnxGraph) -> OperationConverterResult:
    raise NotImplementedError(
        f"{node.operation_type} draws random numbers in eval mode too (it is not a train-mode layer such as "
        "dropout or stochastic depth), so the model has no deterministic value to rehydrate and check; cut the "
        "model before it or remove the randomness from its forward()"
    )


for _op in ("RandomUniform", "RandomUniformLike", "RandomNormal", "RandomNormalLike", "Bernoulli", "Multinomial"):
    converter(_op, since=1)(_refuse)
