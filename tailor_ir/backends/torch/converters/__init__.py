"""Converters of this package, one module per op family (importing them registers them)."""

from . import (  # noqa: F401
    activation,
    compare,
    conv,
    dropout,
    elementwise,
    linear,
    loss,
    norm,
    pool,
    recurrent,
    reduce,
    sequence,
    shape,
    slice,
    tensor,
)
