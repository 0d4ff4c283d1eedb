"""Running a length-chunked batch (:class:`finetuner.data.content.Chunks`): one implementation for the torch,
Keras and Paddle backends, each passing its own tensor conversion, concatenation and row gather.

Pair batches mix long anchors with short positives; ``tokenizer_collate(chunked=True)`` pads each length group
to its own longest text. The backend runs the groups one after another and puts the rows back in batch order,
so the loss sees exactly the embeddings an unchunked batch would give (up to the padding a masked model ignores).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, NamedTuple

from finetuner.data.content import Chunks


class ChunkedInput(NamedTuple):
    """A Chunks batch as backend tensors: ``chunks`` run one after another, ``restore`` (int64 indices) puts the
    concatenated rows back in batch order. A NamedTuple so that ``tf.function`` traces it as a structure."""

    chunks: tuple[Any, ...]
    restore: Any


def to_backend(contents: Any, to_tensor: Callable[[Any], Any], to_index: Callable[[Any], Any]) -> Any:
    """``contents`` as backend tensors: a :class:`ChunkedInput` for Chunks, ``to_tensor(contents)`` otherwise."""
    if isinstance(contents, Chunks):
        return ChunkedInput(tuple(to_tensor(chunk) for chunk in contents), to_index(contents.restore()))
    return to_tensor(contents)


def run(
    inputs: Any,
    forward: Callable[[Any], Any],
    concat: Callable[[Sequence[Any]], Any],
    take: Callable[[Any, Any], Any],
) -> Any:
    """``forward(inputs)``; for a :class:`ChunkedInput`, ``forward`` of each chunk, concatenated along the batch
    axis and gathered back into batch order with ``take(rows, restore)``."""
    if isinstance(inputs, ChunkedInput):
        return take(concat([forward(chunk) for chunk in inputs.chunks]), inputs.restore)
    return forward(inputs)
