"""One module per op family; importing this package registers every converter."""

from . import (  # noqa: F401
    activation,
    attention,
    conv,
    dropout,
    elementwise,
    index,
    linear,
    loss,
    math,
    norm,
    pad,
    quantize,
    recurrent,
    reduce,
    resize,
    shape,
    signal,
)
