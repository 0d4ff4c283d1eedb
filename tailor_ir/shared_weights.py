"""Copy-on-write weights shared by the models rehydrated from one export.

Trying cuts (``display``, then several ``to_embedding`` calls on one unchanged model) rehydrates a model per cut,
and each model needs its own writable copy of the export's weights: 440 MB per call for BERT-base, written page by
page into fresh memory. Instead, the weights of an export are written once into an anonymous in-memory file
(``memfd``), and every model rehydrated from a cut of that export maps them privately (``MAP_PRIVATE``): reading
shares the file's pages, and the first write to a page (a training step) gives that model its own copy of the page.
So models never see each other's updates, a later cut costs no weight copy, and models that are only compared,
never trained, share one copy of the weights.

Only the Graph object that ``passes.embedding_head`` returned (registered in :mod:`tailor_ir.reference`) is served
from its export's store, and only for initializers it kept as they were (same name, type and shape); any
other graph, and platforms without ``memfd``, get plain copies.
"""

from __future__ import annotations

import mmap
import os
import threading
import weakref
from collections.abc import Iterable

import numpy as np
import onnx

from .graph import Graph
from .protos import tensor_nbytes
from .reference import origin_of

MIN_SHARED_BYTES = 1 << 16  # smaller weights are copied: a mapping per tiny bias would cost more than it saves

_LOCK = threading.Lock()
_STORES: weakref.WeakKeyDictionary[Graph, _Store] = weakref.WeakKeyDictionary()


class _Store:
    """The weights of one export in a memfd, appended as they are first asked for."""

    def __init__(self) -> None:
        self._file = os.fdopen(os.memfd_create("tailor_ir-weights", os.MFD_CLOEXEC), "w+b")
        self._entries: dict[str, tuple[int, np.dtype, tuple[int, ...]]] = {}
        self._end = 0
        self._lock = threading.Lock()

    def private_copy(self, name: str, source: onnx.TensorProto) -> np.ndarray:
        """A writable, copy-on-write array of ``source``'s value, written into the store on first use."""
        with self._lock:
            entry = self._entries.get(name)
            if entry is None:
                entry = self._entries[name] = self._append(onnx.numpy_helper.to_array(source))
        offset, dtype, shape = entry
        return np.memmap(self._file, dtype=dtype, mode="c", offset=offset, shape=shape)

    def _append(self, array: np.ndarray) -> tuple[int, np.dtype, tuple[int, ...]]:
        array = np.ascontiguousarray(array)
        offset = -(-self._end // mmap.ALLOCATIONGRANULARITY) * mmap.ALLOCATIONGRANULARITY
        data = memoryview(array).cast("B")
        written = 0
        while written < len(data):
            written += os.pwrite(self._file.fileno(), data[written:], offset + written)
        self._end = offset + len(data)
        return offset, array.dtype, array.shape


def writable_weights(graph: Graph, names: Iterable[str]) -> dict[str, np.ndarray]:
    """Writable arrays of ``graph``'s initializers ``names``, each private to the caller.

    For a graph cut from an export by ``embedding_head``, the large weights it kept from the export are
    copy-on-write mappings of the export's shared store (see the module docstring); everything else is copied.
    """
    source = origin_of(graph)
    store = _store(source) if source is not None else None
    arrays: dict[str, np.ndarray] = {}
    for name in names:
        ours = graph.initializers[name]
        theirs = source.initializers.get(name) if source is not None else None
        if store is not None and theirs is not None and _large(ours) and _same_tensor(ours, theirs):
            arrays[name] = store.private_copy(name, theirs)
        else:
            arrays[name] = np.array(graph.initializer_array(name))
    return arrays


def _store(source: Graph) -> _Store | None:
    if not hasattr(os, "memfd_create"):
        return None
    with _LOCK:
        store = _STORES.get(source)
        if store is None:
            store = _STORES[source] = _Store()
        return store


def _large(tensor: onnx.TensorProto) -> bool:
    return tensor_nbytes(tensor.dims, tensor.data_type) >= MIN_SHARED_BYTES


def _same_tensor(ours: onnx.TensorProto, theirs: onnx.TensorProto) -> bool:
    """Cheap identity of a kept initializer (no data is read, so it is no proof: the registry is): type, shape,
    and data held inside the model."""
    return (
        ours.data_type == theirs.data_type
        and list(ours.dims) == list(theirs.dims)
        and ours.data_location == theirs.data_location == onnx.TensorProto.DEFAULT
    )
