"""Pooling with ONNX's exact window rules: MaxPool (indices too), AveragePool (19+: dilations), LpPool, globals.

Windows are taken with ``Tensor.unfold`` over an explicitly padded input, so every attribute combination
(asymmetric pads, auto_pad, ceil_mode, dilations, count_include_pad) follows the ONNX reference: pixels of the
extra ceil-mode padding never count, explicit padding counts for averages only with count_include_pad=1.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from onnx2torch.onnx_graph import OnnxGraph
from onnx2torch.onnx_node import OnnxNode
from torch import nn

from ..registry import converter
from ._common import OperationConverterResult, attr, result


class Pool(nn.Module):
    """N-d max / average / Lp pooling (NC + spatial layout)."""

    def __init__(self, kind: str, kernel: list[int], strides: list[int], pads: list[int], dilations: list[int],
                 auto_pad: str, ceil_mode: bool, count_include_pad: bool, p: int = 2, storage_order: int = 0,
                 indices: bool = False) -> None:
        super().__init__()
        self.kind, self.kernel, self.strides, self.pads, self.dilations = kind, kernel, strides, pads, dilations
        self.auto_pad, self.ceil_mode, self.count_include_pad, self.p = auto_pad, ceil_mode, count_include_pad, p
        self.storage_order, self.indices = storage_order, indices
        self.fast = self._native(len(kernel))

    def _geometry(self, sizes: list[int]) -> tuple[list[int], list[int], list[int], list[int]]:
        """(pads begin, pads end, extra ceil padding at the end, output sizes) per spatial dim."""
        n = len(sizes)
        begin, end, extra, out = [], [], [], []
        for i, size in enumerate(sizes):
            k, s, d = self.kernel[i], self.strides[i], self.dilations[i]
            ek = (k - 1) * d + 1
            if self.auto_pad in ("SAME_UPPER", "SAME_LOWER"):
                o = -(-size // s)
                total = max((o - 1) * s + ek - size, 0)
                small, large = total // 2, total - total // 2
                b, e = (small, large) if self.auto_pad == "SAME_UPPER" else (large, small)
            elif self.auto_pad == "VALID":
                b, e = 0, 0
                o = (size - ek) // s + 1
            else:
                b, e = self.pads[i], self.pads[i + n]
                span = size + b + e - ek
                if self.ceil_mode:
                    o = -(-span // s) + 1
                    if (o - 1) * s >= size + b:
                        o -= 1
                else:
                    o = span // s + 1
            begin.append(b)
            end.append(e)
            extra.append(max(0, (o - 1) * s + ek - (size + b + e)))
            out.append(o)
        return begin, end, extra, out

    def _windows(self, x: torch.Tensor, begin: list[int], end: list[int], extra: list[int], out: list[int],
                 fill: float) -> torch.Tensor:
        pad: list[int] = []
        for b, e, x_ in zip(reversed(begin), reversed(end), reversed(extra)):
            pad += [b, e + x_]
        x = F.pad(x, pad, value=fill)
        for i in range(len(out)):
            ek = (self.kernel[i] - 1) * self.dilations[i] + 1
            x = x.unfold(2 + i, ek, self.strides[i]).narrow(2 + i, 0, out[i])
            x = x[..., :: self.dilations[i]]
        return x

    def _native(self, n: int) -> bool:
        """Whether torch's own pooling kernel computes exactly this (symmetric pads within half a kernel)."""
        if self.indices or self.kind == "lp" or n not in (1, 2, 3) or self.auto_pad not in ("NOTSET", "VALID"):
            return False
        pads = [0] * 2 * n if self.auto_pad == "VALID" else self.pads
        if pads[:n] != pads[n:] or any(p > k // 2 for p, k in zip(pads[:n], self.kernel)):
            return False
        return self.kind == "max" or all(d == 1 for d in self.dilations)

    def forward(self, x: torch.Tensor) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
        sizes = list(x.shape[2:])
        if self.fast and x.dtype.is_floating_point:
            n = len(sizes)
            pads = [0] * n if self.auto_pad == "VALID" else self.pads[:n]
            if self.kind == "max":
                fn = (F.max_pool1d, F.max_pool2d, F.max_pool3d)[n - 1]
                return fn(x, self.kernel, self.strides, pads, self.dilations, self.ceil_mode)
            fn = (F.avg_pool1d, F.avg_pool2d, F.avg_pool3d)[n - 1]
            return fn(x, self.kernel, self.strides, pads, self.ceil_mode, self.count_include_pad)
        n = len(sizes)
        begin, end, extra, out = self._geometry(sizes)
        window_dims = tuple(range(-n, 0))
        if self.kind == "max":
            low = float("-inf") if x.dtype.is_floating_point else torch.iinfo(x.dtype).min
            w = self._windows(x, begin, end, extra, out, low)
            flat = w.reshape(*w.shape[: 2 + n], -1)
            values, arg = flat.max(dim=-1)
            if not self.indices:
                return values
            index = self._flat_index(x)
            iw = self._windows(index, begin, end, extra, out, -1).reshape(flat.shape)
            return values, torch.gather(iw, -1, arg.unsqueeze(-1)).squeeze(-1)
        valid = torch.ones((1, 1, *sizes), dtype=x.dtype, device=x.device)
        if self.kind == "lp":
            w = self._windows(x.abs().pow(self.p), begin, end, extra, out, 0.0)
            return w.sum(dim=window_dims).pow(1.0 / self.p)
        w = self._windows(x, begin, end, extra, out, 0.0)
        if self.count_include_pad:
            valid = F.pad(valid, [v for b, e in zip(reversed(begin), reversed(end)) for v in (b, e)], value=1.0)
            count = self._windows(valid, [0] * n, [0] * n, extra, out, 0.0)
        else:
            count = self._windows(valid, begin, end, extra, out, 0.0)
        return (w.sum(dim=window_dims) / count.sum(dim=window_dims)).to(x.dtype)

    def _flat_index(self, x: torch.Tensor) -> torch.Tensor:
        """Each element's flat index in x (spatial dims column-major when storage_order=1)."""
        index = torch.arange(x.numel(), device=x.device).reshape(x.shape)
        if self.storage_order == 1 and x.dim() == 4:
            n, c, h, w = x.shape
            hh = torch.arange(h, device=x.device).reshape(1, 1, h, 1)
            ww = torch.arange(w, device=x.device).reshape(1, 1, 1, w)
            base = (torch.arange(n * c, device=x.device) * h * w).reshape(n, c, 1, 1)
            index = base + ww * h + hh
        return index


def _pool(node: OnnxNode, kind: str) -> Pool:
    kernel = [int(k) for k in node.attributes["kernel_shape"]]
    n = len(kernel)
    return Pool(
        kind, kernel, [int(s) for s in attr(node, "strides", [1] * n)], [int(p) for p in attr(node, "pads", [0] * 2 * n)],
        [int(d) for d in attr(node, "dilations", [1] * n)], attr(node, "auto_pad", "NOTSET"),
        bool(attr(node, "ceil_mode", 0)), bool(attr(node, "count_include_pad", 0)), int(attr(node, "p", 2)),
        int(attr(node, "storage_order", 0)), len([o for o in node.output_values if o]) > 1,
    )


@converter("MaxPool", since=8)
def convert_max_pool(node: OnnxNode, graph: OnnxGraph) -> OperationConverterResult:
    return result(_pool(node, "max"), node)


@converter("AveragePool", since=7)
def convert_average_pool(node: OnnxNode, graph: OnnxGraph) -> OperationConverterResult:
    return result(_pool(node, "avg"), node)


@converter("LpPool", since=11)
def convert_lp_pool(node: OnnxNode, graph: OnnxGraph) -> OperationConverterResult:
    return result(_pool(node, "lp"), node)


class GlobalPool(nn.Module):
    """Global max / average / Lp pooling over every spatial dim (kept as size 1)."""

    def __init__(self, kind: str, p: int = 2) -> None:
        super().__init__()
        self.kind, self.p = kind, p

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        dims = tuple(range(2, x.dim()))
        if self.kind == "max":
            return torch.amax(x, dim=dims, keepdim=True)
        if self.kind == "avg":
            return torch.mean(x, dim=dims, keepdim=True)
        return x.abs().pow(self.p).sum(dim=dims, keepdim=True).pow(1.0 / self.p)


@converter("GlobalMaxPool", since=1)
def convert_global_max_pool(node: OnnxNode, graph: OnnxGraph) -> OperationConverterResult:
    return result(GlobalPool("max"), node)


@converter("GlobalAveragePool", since=1)
def convert_global_average_pool(node: OnnxNode, graph: OnnxGraph) -> OperationConverterResult:
    return result(GlobalPool("avg"), node)


@converter("GlobalLpPool", since=2)
def convert_global_lp_pool(node: OnnxNode, graph: OnnxGraph) -> OperationConverterResult:
    return result(GlobalPool("lp", int(attr(node, "p", 2))), node)

