"""Training data for Finetuner: DocumentArray / ``(X, y)`` / ``X`` -> validated datasets, samplers and batches.

numpy and docarray only (no deep-learning framework). The Tuner calls :func:`build_loader` (or
:func:`prepare`); every batch is a :class:`Batch` ``(contents, labels, kind)``.
"""

from finetuner.data.augment import augment_image, augment_text, augment_vector, default_augment
from finetuner.data.content import LABEL_TAG, default_collate, load_content, tokenizer_collate
from finetuner.data.datasets import (
    ClassDataset,
    Dataset,
    InstanceDataset,
    SessionDataset,
    as_dataset,
    detect_kind,
)
from finetuner.data.digits import digits
from finetuner.data.errors import DataError
from finetuner.data.files import load_documents, save_documents
from finetuner.data.loader import Batch, BatchLoader, build_loader, default_m, in_order, prepare
from finetuner.data.pairs import PairDataset, is_pair_data
from finetuner.data.samplers import (
    ClassSampler,
    InstanceSampler,
    ItemSampler,
    NoDuplicatesSampler,
    Sampler,
    SessionSampler,
)
from finetuner.data.splits import split_by_class, split_items

__all__ = [
    "LABEL_TAG",
    "Batch",
    "BatchLoader",
    "ClassDataset",
    "ClassSampler",
    "DataError",
    "Dataset",
    "InstanceDataset",
    "InstanceSampler",
    "ItemSampler",
    "NoDuplicatesSampler",
    "PairDataset",
    "Sampler",
    "SessionDataset",
    "SessionSampler",
    "as_dataset",
    "augment_image",
    "augment_text",
    "augment_vector",
    "build_loader",
    "default_augment",
    "default_collate",
    "default_m",
    "in_order",
    "is_pair_data",
    "detect_kind",
    "digits",
    "load_content",
    "load_documents",
    "prepare",
    "save_documents",
    "split_by_class",
    "split_items",
    "tokenizer_collate",
]
