"""DocumentArray files that cannot run code: docarray's protobuf format, never pickle unless asked for.

docarray's ``load_binary`` defaults to pickle (and picks the protocol from the file name), so a crafted file runs
code when loaded. :func:`load_documents` parses the protobuf ``DocumentArrayProto`` itself; pickle is used only
with ``trust_pickle=True``, for files from a source the user trusts. :func:`save_documents` writes the format
:func:`load_documents` reads (the same as ``da.save_binary(path, protocol='protobuf-array')``).
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path
from typing import Any

from finetuner.data.errors import DataError

__all__ = ["PICKLE_WARNING", "load_documents", "save_documents"]

PICKLE_MAGIC = b"\x80"  # the PROTO opcode every pickle of protocol 2 or higher starts with
PICKLE_WARNING = (
    "unpickling runs any code the file holds: use it only for files you made yourself or fully trust"
)


def save_documents(docs: Any, path: str | os.PathLike) -> Path:
    """Write ``docs`` (a DocumentArray) to ``path`` in docarray's protobuf format; return the path."""
    path = Path(path)
    path.write_bytes(docs.to_protobuf().SerializeToString())
    return path


def load_documents(path: str | os.PathLike, trust_pickle: bool = False) -> Any:
    """The DocumentArray in ``path`` (protobuf, as :func:`save_documents` or ``protocol='protobuf-array'`` wrote).

    A pickled DocumentArray (docarray's default ``save_binary``) is refused unless ``trust_pickle=True``.
    """
    from docarray import DocumentArray
    from docarray.proto.docarray_pb2 import DocumentArrayProto
    from google.protobuf.message import DecodeError
    from google.protobuf.unknown_fields import UnknownFieldSet

    path = Path(path)
    if not path.is_file():
        raise DataError(f"data file {path} does not exist")
    if trust_pickle:
        warnings.warn(f"loading {path} with pickle (trust_pickle=True): {PICKLE_WARNING}", stacklevel=2)
        return DocumentArray.load_binary(str(path))
    data = path.read_bytes()
    proto = DocumentArrayProto()
    try:
        if data.startswith(PICKLE_MAGIC):
            raise ValueError("the file is a pickle")
        proto.ParseFromString(data)
        if len(UnknownFieldSet(proto)) or (data and not proto.docs):
            raise ValueError("the bytes parse to no Document")
        return DocumentArray.from_protobuf(proto)
    except (DecodeError, ValueError, TypeError, RuntimeError) as exc:
        raise DataError(
            f"{path} is not a DocumentArray in docarray's protobuf format ({exc}). Write it with "
            "finetuner.data.save_documents(docs, path) or docs.save_binary(path, protocol='protobuf-array'); a "
            f"pickled file (docarray's default) loads only with trust_pickle=True / --trust-pickle: {PICKLE_WARNING}"
        ) from exc
