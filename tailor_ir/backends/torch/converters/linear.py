"""Gemm with the weight as an input (F.linear when it is a plain linear layer)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from onnx2torch.onnx_graph import OnnxGraph
from onnx2torch.onnx_node import OnnxNode
from torch import nn

from ..registry import converter
from ._common import OperationConverterResult, attr, result


class Linear(nn.Module):
    """y = x @ W^T + b (ONNX Gemm with transB=1, alpha=beta=1)."""

    def forward(self, x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None = None) -> torch.Tensor:
        return F.linear(x, weight, bias)


class Gemm(nn.Module):
    """General ONNX Gemm: alpha * A' @ B' + beta * C."""

    def __init__(self, alpha: float, beta: float, trans_a: bool, trans_b: bool) -> None:
        super().__init__()
        self.alpha, self.beta, self.trans_a, self.trans_b = alpha, beta, trans_a, trans_b

    def forward(self, a: torch.Tensor, b: torch.Tensor, c: torch.Tensor | None = None) -> torch.Tensor:
        a = a.t() if self.trans_a else a
        b = b.t() if self.trans_b else b
        y = a @ b
        if self.alpha != 1.0:
            y = y * self.alpha
        if c is not None:
            y = y + (c if self.beta == 1.0 else c * self.beta)
        return y


@converter("Gemm", since=1)
def convert_gemm(node: OnnxNode, graph: OnnxGraph) -> OperationConverterResult:
    alpha, beta = float(attr(node, "alpha", 1.0)), float(attr(node, "beta", 1.0))
    trans_a, trans_b = bool(attr(node, "transA", 0)), bool(attr(node, "transB", 0))
    if alpha == 1.0 and beta == 1.0 and not trans_a and trans_b:
        return result(Linear(), node)
    return result(Gemm(alpha, beta, trans_a, trans_b), node)


@converter("Linear", since=1, domain="tailor_ir_torch")
def convert_fused_linear(node: OnnxNode, graph: OnnxGraph) -> OperationConverterResult:
    """The pre-pass's fusion of Transpose(W) + MatMul + Add(b)."""
    return result(Linear(), node)


class MatMul(nn.Module):
    """ONNX MatMul; float16 / bfloat16 products accumulate in float32 and round once, as the reference does."""

    def forward(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        if a.dtype in (torch.float16, torch.bfloat16):
            return torch.matmul(a.float(), b.float()).to(a.dtype)
        return torch.matmul(a, b)


@converter("MatMul", since=1)
def convert_matmul(node: OnnxNode, graph: OnnxGraph) -> OperationConverterResult:
    return result(MatMul(), node)
