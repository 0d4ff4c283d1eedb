"""scikit-learn's digits (1,797 8x8 images of 0-9, shipped offline) as class data."""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np

from finetuner.data.content import LABEL_TAG


def digits(classes: Iterable[int] | None = None, image: bool = False):  # -> DocumentArray
    """A class ``DocumentArray`` of the digits: float32 tensors scaled to [0, 1], of shape (64,) or, with
    ``image``, (1, 8, 8); ``tags['finetuner_label']`` is the digit. ``classes`` keeps only those digits
    (e.g. train on ``range(7)``, evaluate on ``[7, 8, 9]``)."""
    from docarray import Document, DocumentArray
    from sklearn.datasets import load_digits

    x, y = load_digits(return_X_y=True)
    x = (x / 16.0).astype(np.float32)
    if image:
        x = x.reshape(-1, 1, 8, 8)
    keep = np.ones(len(y), dtype=bool) if classes is None else np.isin(y, list(classes))
    return DocumentArray(Document(tensor=x[i], tags={LABEL_TAG: int(y[i])}) for i in np.flatnonzero(keep))
