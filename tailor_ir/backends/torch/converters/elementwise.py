"""Elementwise ops: unary math and activations, bitwise ops, Size, and the later versions that only add types.

Each module computes the op in the input's own dtype (ONNX semantics); the type-only schema versions reuse
onnx2torch's converter of the previous version (``alias``), which is exact for the added types torch has.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
import torch.nn.functional as F
from onnx2torch.onnx_graph import OnnxGraph
from onnx2torch.onnx_node import OnnxNode
from torch import nn

from ..registry import alias, converter
from ._common import OperationConverterResult, attr, result

# versions that only widen the type list (checked against onnx.defs: no attribute or input changes)
for _op, _existing, _since in (
    ("Acos", 7, 22), ("Asin", 7, 22), ("Atan", 7, 22), ("Cos", 7, 22), ("Sin", 7, 22), ("Tan", 7, 22),
    ("Celu", 12, 28), ("DepthToSpace", 13, 28), ("EyeLike", 9, 22),
("HardSigmoid", 6, 22), ("HardSwish", 14, 22), ("InstanceNormalization", 6, 22),
    ("RoiAlign", 16, 22), ("Round", 11, 22), ("Squeeze", 21, 23),
):
    alias(_op, existing=_existing, since=_since)


def _unary(fn: Callable[..., torch.Tensor]) -> type[nn.Module]:
    class Unary(nn.Module):
        def __init__(self, **params: float) -> None:
            super().__init__()
            self.params = params

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return fn(x, **self.params)

    Unary.__name__ = Unary.__qualname__ = fn.__name__.strip("_").title().replace("_", "")
    Unary.__doc__ = f"ONNX {Unary.__name__}: {fn.__doc__}"
    return Unary


def _elu(x: torch.Tensor, alpha: float) -> torch.Tensor:
    """x if x > 0 else alpha * (exp(x) - 1)."""
    return torch.where(x > 0, x, alpha * torch.expm1(x))


def _selu(x: torch.Tensor, alpha: float, gamma: float) -> torch.Tensor:
    """gamma * (x if x > 0 else alpha * (exp(x) - 1))."""
    return gamma * torch.where(x > 0, x, alpha * torch.expm1(x))


def _hard_sigmoid(x: torch.Tensor, alpha: float, beta: float) -> torch.Tensor:
    """max(0, min(1, alpha * x + beta))."""
    return torch.clamp(alpha * x + beta, 0, 1)


def _hard_swish(x: torch.Tensor) -> torch.Tensor:
    """x * max(0, min(1, x / 6 + 0.5))."""
    return x * torch.clamp(x / 6 + 0.5, 0, 1)


def _softplus(x: torch.Tensor) -> torch.Tensor:
    """log(exp(x) + 1)."""
    return torch.log1p(torch.exp(x))


def _softsign(x: torch.Tensor) -> torch.Tensor:
    """x / (1 + |x|)."""
    return x / (1 + x.abs())


def _thresholded_relu(x: torch.Tensor, alpha: float) -> torch.Tensor:
    """x if x > alpha else 0."""
    return torch.where(x > alpha, x, torch.zeros_like(x))


def _shrink(x: torch.Tensor, lambd: float, bias: float) -> torch.Tensor:
    """x + bias if x < -lambd, x - bias if x > lambd, else 0 (in x's dtype)."""
    zero = torch.zeros_like(x)
    return torch.where(x < -lambd, x + bias, torch.where(x > lambd, x - bias, zero)).to(x.dtype)


def _mish(x: torch.Tensor) -> torch.Tensor:
    """x * tanh(softplus(x))."""
    return x * torch.tanh(F.softplus(x))


def _swish(x: torch.Tensor, alpha: float) -> torch.Tensor:
    """x * sigmoid(alpha * x)."""
    return x * torch.sigmoid(alpha * x)


def _celu(x: torch.Tensor, alpha: float) -> torch.Tensor:
    """max(0, x) + min(0, alpha * (exp(x / alpha) - 1))."""
    return torch.clamp(x, min=0) + torch.clamp(alpha * torch.expm1(x / alpha), max=0)


_SIMPLE: dict[str, tuple[int, Callable[..., torch.Tensor], dict[str, float]]] = {
    "Elu": (22, _elu, {"alpha": 1.0}),
    "Selu": (22, _selu, {"alpha": 1.67326319217681884765625, "gamma": 1.05070102214813232421875}),
    "HardSigmoid": (22, _hard_sigmoid, {"alpha": 0.2, "beta": 0.5}),
    "HardSwish": (22, _hard_swish, {}),
    "Softplus": (22, _softplus, {}),
    "Softsign": (22, _softsign, {}),
    "ThresholdedRelu": (10, _thresholded_relu, {"alpha": 1.0}),
    "Shrink": (9, _shrink, {"lambd": 0.5, "bias": 0.0}),
    "Mish": (18, _mish, {}),
    "Swish": (24, _swish, {"alpha": 1.0}),
    "Celu": (28, _celu, {"alpha": 1.0}),
    "Acosh": (9, torch.acosh, {}), "Asinh": (9, torch.asinh, {}), "Atanh": (9, torch.atanh, {}),
    "Cosh": (9, torch.cosh, {}), "Sinh": (9, torch.sinh, {}),
    "BitwiseNot": (18, torch.bitwise_not, {}),
    "Det": (11, torch.linalg.det, {}),
}
_MODULES = {op: _unary(fn) for op, (_, fn, _) in _SIMPLE.items()}


def _convert_simple(node: OnnxNode, graph: OnnxGraph) -> OperationConverterResult:
    _, _, defaults = _SIMPLE[node.operation_type]
    params = {k: float(attr(node, k, v)) for k, v in defaults.items()}
    return result(_MODULES[node.operation_type](**params), node)


for _op, (_since, _, _) in _SIMPLE.items():
    converter(_op, since=_since)(_convert_simple)


class Binary(nn.Module):
    """A torch elementwise binary function (bitwise and/or/xor)."""

    def __init__(self, fn: str) -> None:
        super().__init__()
        self.fn = fn

    def forward(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        return getattr(torch, self.fn)(a, b)


for _op, _fn in (("BitwiseAnd", "bitwise_and"), ("BitwiseOr", "bitwise_or"), ("BitwiseXor", "bitwise_xor")):
    converter(_op, since=18)(lambda node, graph, _fn=_fn: result(Binary(_fn), node))


class BitShift(nn.Module):
    """ONNX BitShift on unsigned integers (uint8 here; wider unsigned types are refused by dtype)."""

    def __init__(self, left: bool) -> None:
        super().__init__()
        self.left = left

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return torch.bitwise_left_shift(x, y) if self.left else torch.bitwise_right_shift(x, y)


@converter("BitShift", since=11)
def convert_bit_shift(node: OnnxNode, graph: OnnxGraph) -> OperationConverterResult:
    return result(BitShift(attr(node, "direction", "LEFT") == "LEFT"), node)


class Size(nn.Module):
    """ONNX Size: the element count as an int64 scalar."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.tensor(math.prod(x.shape), dtype=torch.int64)


@converter("Size", since=1)
def convert_size(node: OnnxNode, graph: OnnxGraph) -> OperationConverterResult:
    return result(Size(), node)


class IsInf(nn.Module):
    """ONNX IsInf honouring detect_positive / detect_negative."""

    def __init__(self, positive: bool, negative: bool) -> None:
        super().__init__()
        self.positive, self.negative = positive, negative

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.positive and self.negative:
            return torch.isinf(x)
        if self.positive:
            return torch.isposinf(x)
        if self.negative:
            return torch.isneginf(x)
        return torch.zeros_like(x, dtype=torch.bool)


@converter("IsInf", since=10)
def convert_isinf(node: OnnxNode, graph: OnnxGraph) -> OperationConverterResult:
    module = IsInf(bool(attr(node, "detect_positive", 1)), bool(attr(node, "detect_negative", 1)))
    return result(module, node)
