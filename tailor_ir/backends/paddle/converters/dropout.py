"""Dropout: a real paddle Dropout layer (random in train mode, identity in eval mode)."""

from __future__ import annotations

import onnx

from ..context import BuildContext, Converted, attr, layer_of
from ..registry import converter
from ._common import paddle


@converter("Dropout", since=1)
def convert_dropout(node: onnx.NodeProto, ctx: BuildContext) -> Converted:
    if len([o for o in node.output if o]) > 1:
        raise NotImplementedError("Dropout with a mask output is not implemented")
    ratio = 0.5
    if ctx.opset < 12:
        ratio = float(attr(node, "ratio", 0.5))
    elif len(node.input) > 1 and node.input[1]:
        value = ctx.const(node.input[1])
        if value is None:
            raise NotImplementedError("Dropout with a computed ratio is not implemented")
        ratio = float(value.reshape(()))
    return layer_of(paddle.nn.Dropout(ratio), [node.input[0]])
