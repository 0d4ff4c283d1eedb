"""Tensor ops with the semantics of every schema version in the pinned onnx.

CumSum (reverse defaults to 0), CumProd, Flatten (any axis, 0 included), GatherElements / GatherND (negative
indices, batch_dims), NonZero, Trilu, Clip (run-time bounds), Pow (output in the base's dtype), Split (18:
num_outputs), Pad (18: axes; 19: wrap), Range, ScatterND / ScatterElements (every reduction), Hardmax, OneHot,
SpaceToDepth, Mod, TopK.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from onnx2torch.onnx_graph import OnnxGraph
from onnx2torch.onnx_node import OnnxNode
from torch import nn

from ..registry import converter
from ._common import OperationConverterResult, attr, const_array, result


class CumOp(nn.Module):
    """ONNX CumSum / CumProd along a run-time axis (exclusive / reverse as attributes), in the input's dtype."""

    def __init__(self, prod: bool, exclusive: bool, reverse: bool) -> None:
        super().__init__()
        self.prod, self.exclusive, self.reverse = prod, exclusive, reverse

    def forward(self, x: torch.Tensor, axis: torch.Tensor) -> torch.Tensor:
        dim = int(axis.reshape(-1)[0]) % max(x.dim(), 1)
        if self.reverse:
            x = x.flip(dim)
        if self.exclusive:
            fill = torch.ones_like if self.prod else torch.zeros_like
            first = fill(x.narrow(dim, 0, 1))
            x = torch.cat([first, x.narrow(dim, 0, x.shape[dim] - 1)], dim)
        y = (torch.cumprod if self.prod else torch.cumsum)(x, dim, dtype=x.dtype)
        return y.flip(dim) if self.reverse else y


@converter("CumSum", since=11)
def convert_cumsum(node: OnnxNode, graph: OnnxGraph) -> OperationConverterResult:
    return result(CumOp(False, bool(attr(node, "exclusive", 0)), bool(attr(node, "reverse", 0))), node)


@converter("CumProd", since=26)
def convert_cumprod(node: OnnxNode, graph: OnnxGraph) -> OperationConverterResult:
    return result(CumOp(True, bool(attr(node, "exclusive", 0)), bool(attr(node, "reverse", 0))), node)


class Flatten(nn.Module):
    """ONNX Flatten: a 2-D view (prod(dims[:axis]), prod(dims[axis:])); axis may be 0 or negative."""

    def __init__(self, axis: int) -> None:
        super().__init__()
        self.axis = axis

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        axis = self.axis + x.dim() if self.axis < 0 else self.axis
        outer, inner = 1, 1
        for d in x.shape[:axis]:
            outer *= int(d)
        for d in x.shape[axis:]:
            inner *= int(d)
        return x.reshape(outer, inner)


@converter("Flatten", since=1)
def convert_flatten(node: OnnxNode, graph: OnnxGraph) -> OperationConverterResult:
    return result(Flatten(int(attr(node, "axis", 1))), node)


class GatherElements(nn.Module):
    """ONNX GatherElements (negative indices count from the end)."""

    def __init__(self, axis: int) -> None:
        super().__init__()
        self.axis = axis

    def forward(self, x: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
        axis = self.axis % x.dim()
        index = index.long()
        index = torch.where(index < 0, index + x.shape[axis], index)
        return torch.gather(x, axis, index)


@converter("GatherElements", since=11)
def convert_gather_elements(node: OnnxNode, graph: OnnxGraph) -> OperationConverterResult:
    return result(GatherElements(int(attr(node, "axis", 0))), node)


class GatherND(nn.Module):
    """ONNX GatherND with batch_dims and negative indices."""

    def __init__(self, batch_dims: int) -> None:
        super().__init__()
        self.batch_dims = batch_dims

    def forward(self, x: torch.Tensor, indices: torch.Tensor) -> torch.Tensor:
        b = self.batch_dims
        batch_shape = x.shape[:b]
        n_batch = 1
        for d in batch_shape:
            n_batch *= int(d)
        data = x.reshape(n_batch, *x.shape[b:])
        idx = indices.long().reshape(n_batch, -1, indices.shape[-1])
        depth = indices.shape[-1]
        dims = torch.tensor(data.shape[1 : 1 + depth], dtype=torch.long, device=x.device)
        idx = torch.where(idx < 0, idx + dims, idx)
        batch = torch.arange(n_batch, device=x.device).reshape(n_batch, 1).expand(n_batch, idx.shape[1])
        gathered = data[(batch, *idx.unbind(-1))]
        return gathered.reshape(*indices.shape[:-1], *x.shape[b + depth :])


@converter("GatherND", since=11)
def convert_gather_nd(node: OnnxNode, graph: OnnxGraph) -> OperationConverterResult:
    return result(GatherND(int(attr(node, "batch_dims", 0))), node)


class NonZero(nn.Module):
    """ONNX NonZero: indices as (rank, count) int64."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() == 0:
            return torch.zeros((0, int(bool(x))), dtype=torch.long)
        return torch.nonzero(x).t().contiguous()


@converter("NonZero", since=9)
def convert_nonzero(node: OnnxNode, graph: OnnxGraph) -> OperationConverterResult:
    return result(NonZero(), node)


class Trilu(nn.Module):
    """ONNX Trilu: upper (triu) or lower (tril) triangle with a run-time diagonal offset k."""

    def __init__(self, upper: bool) -> None:
        super().__init__()
        self.upper = upper

    def forward(self, x: torch.Tensor, k: torch.Tensor | None = None) -> torch.Tensor:
        offset = int(k.reshape(-1)[0]) if k is not None else 0
        if x.numel() == 0:
            return x
        return torch.triu(x, offset) if self.upper else torch.tril(x, offset)


@converter("Trilu", since=14)
def convert_trilu(node: OnnxNode, graph: OnnxGraph) -> OperationConverterResult:
    return result(Trilu(bool(attr(node, "upper", 1))), node)


class Clip(nn.Module):
    """ONNX Clip with optional run-time bounds (min > max gives max, as numpy.clip does)."""

    def forward(self, x: torch.Tensor, low: torch.Tensor | None = None, high: torch.Tensor | None = None) -> torch.Tensor:
        if low is not None:
            x = torch.maximum(x, low.to(x.dtype))
        if high is not None:
            x = torch.minimum(x, high.to(x.dtype))
        return x


@converter("Clip", since=11)
def convert_clip(node: OnnxNode, graph: OnnxGraph) -> OperationConverterResult:
    return result(Clip(), node)


class Pow(nn.Module):
    """ONNX Pow: the result has the base's dtype."""

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        if x.dtype.is_floating_point:
            return torch.pow(x, y.to(x.dtype))
        if y.dtype.is_floating_point:
            return torch.pow(x.to(y.dtype), y).to(x.dtype)
        return torch.pow(x, y.to(x.dtype))


@converter("Pow", since=7)
def convert_pow(node: OnnxNode, graph: OnnxGraph) -> OperationConverterResult:
    return result(Pow(), node)


class Split(nn.Module):
    """ONNX Split into static sizes along an axis."""

    def __init__(self, axis: int, sizes: list[int] | None, parts: int) -> None:
        super().__init__()
        self.axis, self.sizes, self.parts = axis, sizes, parts

    def forward(self, x: torch.Tensor, split: torch.Tensor | None = None) -> tuple[torch.Tensor, ...]:
        if split is not None:
            sizes = [int(s) for s in split.tolist()]
        elif self.sizes is not None:
            sizes = self.sizes
        else:
            length = x.shape[self.axis]
            chunk = -(-length // self.parts)
            sizes = [min(chunk, length - i * chunk) for i in range(self.parts)]
        return tuple(torch.split(x, sizes, self.axis))


@converter("Split", since=1)
def convert_split(node: OnnxNode, graph: OnnxGraph) -> OperationConverterResult:
    axis = int(attr(node, "axis", 0))
    parts = len(node.output_values)
    if "num_outputs" in node.attributes:
        parts = int(node.attributes["num_outputs"])
    if "split" in node.attributes:
        return result(Split(axis, [int(s) for s in node.attributes["split"]], parts), node, (node.input_values[0],))
    if len(node.input_values) > 1 and node.input_values[1]:
        sizes = const_array(node.input_values[1], graph)
        if sizes is not None:
            return result(Split(axis, [int(s) for s in sizes.reshape(-1)], parts), node, (node.input_values[0],))
        return result(Split(axis, None, parts), node)
    return result(Split(axis, None, parts), node, (node.input_values[0],))


class Pad(nn.Module):
    """ONNX Pad (constant / reflect / edge / wrap), pads and axes at run time or build time."""

    def __init__(self, mode: str, axes: list[int] | None) -> None:
        super().__init__()
        self.mode, self.axes = mode, axes

    def forward(
        self, x: torch.Tensor, pads: torch.Tensor, value: torch.Tensor | None = None, axes: torch.Tensor | None = None
    ) -> torch.Tensor:
        rank = x.dim()
        axes_list = [int(a) for a in axes.tolist()] if axes is not None else self.axes or list(range(rank))
        axes_list = [a % rank for a in axes_list]
        p = [int(v) for v in pads.tolist()]
        n = len(axes_list)
        begin = dict(zip(axes_list, p[:n]))
        end = dict(zip(axes_list, p[n:]))
        for axis in range(rank):  # negative pads crop
            b, e = begin.get(axis, 0), end.get(axis, 0)
            if b < 0 or e < 0:
                x = x.narrow(axis, -min(b, 0), x.shape[axis] + min(b, 0) + min(e, 0))
                begin[axis], end[axis] = max(b, 0), max(e, 0)
        if self.mode == "constant":
            fill = value.reshape(()).item() if value is not None and value.numel() else 0
            torch_pad: list[int] = []
            for axis in reversed(range(rank)):
                torch_pad += [begin.get(axis, 0), end.get(axis, 0)]
            return F.pad(x, torch_pad, value=fill)
        for axis in range(rank):
            b, e = begin.get(axis, 0), end.get(axis, 0)
            if b or e:
                x = x.index_select(axis, self._index(x.shape[axis], b, e, x.device))
        return x

    def _index(self, size: int, b: int, e: int, device: torch.device) -> torch.Tensor:
        i = torch.arange(-b, size + e, device=device)
        if self.mode == "edge":
            return i.clamp(0, size - 1)
        if self.mode == "wrap":
            return i % size
        period = 2 * (size - 1) if size > 1 else 1  # reflect
        i = i.abs() % period
        return torch.where(i >= size, period - i, i)


@converter("Pad", since=11)
def convert_pad(node: OnnxNode, graph: OnnxGraph) -> OperationConverterResult:
    mode = attr(node, "mode", "constant")
    if mode not in ("constant", "reflect", "edge", "wrap"):
        raise NotImplementedError(f"Pad mode {mode!r}")
    return result(Pad(mode, None), node)


class Range(nn.Module):
    """ONNX Range: start + delta * arange(max(ceil((limit - start) / delta), 0)), in the inputs' dtype."""

    def forward(self, start: torch.Tensor, limit: torch.Tensor, delta: torch.Tensor) -> torch.Tensor:
        s, lim, d = start.item(), limit.item(), delta.item()
        count = max(int(-(-(lim - s) // d)), 0)
        steps = torch.arange(count, dtype=torch.float64 if start.dtype.is_floating_point else torch.long)
        return (s + steps * d).to(start.dtype)


@converter("Range", since=11)
def convert_range(node: OnnxNode, graph: OnnxGraph) -> OperationConverterResult:
    return result(Range(), node)


def _reduce_into(target: torch.Tensor, index: tuple[torch.Tensor, ...], values: torch.Tensor, how: str) -> None:
    """target[index] (op)= values, entry by entry in order (duplicates reduce like the ONNX reference)."""
    if how == "none":
        target[index] = values
        return
    if how == "add":
        target.index_put_(index, values, accumulate=True)
        return
    flat_index = torch.stack([i.reshape(-1) for i in index], -1)
    flat_values = values.reshape(flat_index.shape[0], *values.shape[len(index[0].shape) :])
    for k in range(flat_index.shape[0]):
        at = tuple(flat_index[k].tolist())
        if how == "mul":
            target[at] = target[at] * flat_values[k]
        elif how == "max":
            target[at] = torch.maximum(target[at], flat_values[k])
        else:
            target[at] = torch.minimum(target[at], flat_values[k])


class ScatterND(nn.Module):
    """ONNX ScatterND with reduction none / add / mul / max / min."""

    def __init__(self, reduction: str) -> None:
        super().__init__()
        self.reduction = reduction

    def forward(self, x: torch.Tensor, indices: torch.Tensor, updates: torch.Tensor) -> torch.Tensor:
        out = x.clone()
        idx = indices.long()
        dims = torch.tensor(x.shape[: idx.shape[-1]], dtype=torch.long, device=x.device)
        idx = torch.where(idx < 0, idx + dims, idx)
        _reduce_into(out, tuple(idx.unbind(-1)), updates, self.reduction)
        return out


@converter("ScatterND", since=11)
def convert_scatter_nd(node: OnnxNode, graph: OnnxGraph) -> OperationConverterResult:
    return result(ScatterND(attr(node, "reduction", "none")), node)


class ScatterElements(nn.Module):
    """ONNX ScatterElements (and the deprecated Scatter) with every reduction."""

    def __init__(self, axis: int, reduction: str) -> None:
        super().__init__()
        self.axis, self.reduction = axis, reduction

    def forward(self, x: torch.Tensor, indices: torch.Tensor, updates: torch.Tensor) -> torch.Tensor:
        axis = self.axis % x.dim()
        idx = indices.long()
        idx = torch.where(idx < 0, idx + x.shape[axis], idx)
        grids = torch.meshgrid(*[torch.arange(s, device=x.device) for s in idx.shape], indexing="ij")
        full = tuple(idx if d == axis else grids[d] for d in range(x.dim()))
        out = x.clone()
        _reduce_into(out, full, updates, self.reduction)
        return out


@converter("ScatterElements", since=11)
def convert_scatter_elements(node: OnnxNode, graph: OnnxGraph) -> OperationConverterResult:
    return result(ScatterElements(int(attr(node, "axis", 0)), attr(node, "reduction", "none")), node)


@converter("Scatter", since=9, until=10)
def convert_scatter(node: OnnxNode, graph: OnnxGraph) -> OperationConverterResult:
    return result(ScatterElements(int(attr(node, "axis", 0)), "none"), node)


class Hardmax(nn.Module):
    """ONNX Hardmax (13+): one-hot of the first maximum along ``axis``."""

    def __init__(self, axis: int) -> None:
        super().__init__()
        self.axis = axis

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        axis = self.axis % x.dim()
        index = torch.argmax(x, dim=axis, keepdim=True)
        return torch.zeros_like(x).scatter_(axis, index, 1)


@converter("Hardmax", since=13)
def convert_hardmax(node: OnnxNode, graph: OnnxGraph) -> OperationConverterResult:
    return result(Hardmax(int(attr(node, "axis", -1))), node)


class OneHot(nn.Module):
    """ONNX OneHot: values[1] where index == position along ``axis`` (negative indices wrap), else values[0]."""

    def __init__(self, axis: int) -> None:
        super().__init__()
        self.axis = axis

    def forward(self, indices: torch.Tensor, depth: torch.Tensor, values: torch.Tensor) -> torch.Tensor:
        n = int(depth.reshape(-1)[0].item())
        idx = indices.to(torch.float64).floor().long() if indices.dtype.is_floating_point else indices.long()
        idx = torch.where(idx < 0, idx + n, idx)
        axis = self.axis % (indices.dim() + 1)
        shape = [1] * (indices.dim() + 1)
        shape[axis] = n
        positions = torch.arange(n, device=indices.device).reshape(shape)
        hit = idx.unsqueeze(axis) == positions
        return torch.where(hit, values[1], values[0])


@converter("OneHot", since=11)
def convert_one_hot(node: OnnxNode, graph: OnnxGraph) -> OperationConverterResult:
    return result(OneHot(int(attr(node, "axis", -1))), node)


class SpaceToDepth(nn.Module):
    """ONNX SpaceToDepth: blocks moved to channels, block-major (DCR) or channel-major (CRD, opset 28)."""

    def __init__(self, block: int, crd: bool) -> None:
        super().__init__()
        self.block, self.crd = block, crd

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, c, h, w = x.shape
        b = self.block
        y = x.reshape(n, c, h // b, b, w // b, b)
        y = y.permute(0, 1, 3, 5, 2, 4) if self.crd else y.permute(0, 3, 5, 1, 2, 4)
        return y.reshape(n, c * b * b, h // b, w // b)


@converter("SpaceToDepth", since=1)
def convert_space_to_depth(node: OnnxNode, graph: OnnxGraph) -> OperationConverterResult:
    crd = attr(node, "mode", "DCR") == "CRD"
    return result(SpaceToDepth(int(node.attributes["blocksize"]), crd), node)


class TopK(nn.Module):
    """ONNX TopK: ties keep the lower index first (a stable sort), values and int64 indices."""

    def __init__(self, axis: int, largest: bool) -> None:
        super().__init__()
        self.axis, self.largest = axis, largest

    def forward(self, x: torch.Tensor, k: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        count = int(k.reshape(-1)[0])
        values, indices = torch.sort(x, dim=self.axis, descending=self.largest, stable=True)
        return values.narrow(self.axis, 0, count), indices.narrow(self.axis, 0, count)


@converter("TopK", since=10)
def convert_topk(node: OnnxNode, graph: OnnxGraph) -> OperationConverterResult:
    return result(TopK(int(attr(node, "axis", -1)), bool(attr(node, "largest", 1))), node)


class Einsum(nn.Module):
    """ONNX Einsum (scalars included) on torch.einsum."""

    def __init__(self, equation: str) -> None:
        super().__init__()
        self.equation = equation.replace(" ", "")

    def forward(self, *operands: torch.Tensor) -> torch.Tensor:
        return torch.einsum(self.equation, *operands)


@converter("Einsum", since=12)
def convert_einsum(node: OnnxNode, graph: OnnxGraph) -> OperationConverterResult:
    equation = node.attributes["equation"]
    return result(Einsum(equation.decode() if isinstance(equation, bytes) else equation), node)


class Mod(nn.Module):
    """ONNX Mod: fmod=1 is C fmod (sign of the dividend); fmod=0 is Python % (sign of the divisor)."""

    def __init__(self, fmod: bool) -> None:
        super().__init__()
        self.fmod = fmod

    def forward(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        return torch.fmod(a, b) if self.fmod else torch.remainder(a, b)


@converter("Mod", since=10)
def convert_mod(node: OnnxNode, graph: OnnxGraph) -> OperationConverterResult:
    return result(Mod(bool(attr(node, "fmod", 0))), node)
