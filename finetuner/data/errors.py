"""The one error type of malformed training data."""

from __future__ import annotations

from typing import Any


class DataError(ValueError):
    """Training data that cannot be used as given; the message names the document and says what to fix."""


def doc_error(index: int | str, doc_id: Any, problem: str, fix: str) -> DataError:
    """A :class:`DataError` naming the document at ``index`` (with id ``doc_id``), the problem and the fix."""
    return DataError(f"document {index} (id {doc_id!r}): {problem}; {fix}")
