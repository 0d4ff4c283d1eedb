"""Texts at their real lengths: truncation at the model's maximum, batches of similar length, each padded only to
its own longest text, and embeddings equal to the model's on each text alone."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import finetuner
from finetuner.onnx_meta import EmbeddingModelMeta
from finetuner.serving.model import EmbeddingRuntime, length_batches


class _MeanPooled(torch.nn.Module):
    """A small random BERT with MiniLM's vocabulary and 512 positions: masked mean, then L2 normalisation."""

    def __init__(self) -> None:
        super().__init__()
        from transformers import BertConfig, BertModel

        torch.manual_seed(0)
        config = BertConfig(vocab_size=30522, hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                            intermediate_size=64, max_position_embeddings=512, attn_implementation="eager")
        self.bert = BertModel(config, add_pooling_layer=False).eval()

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        hidden = self.bert(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
        mask = attention_mask.unsqueeze(-1).to(hidden.dtype)
        return torch.nn.functional.normalize((hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9), dim=-1)


@pytest.fixture(scope="module")
def text_model(tmp_path_factory):
    from models.torch_zoo import minilm_tokenizer

    net = _MeanPooled().eval()
    tokenizer = minilm_tokenizer()
    sample = tokenizer(["a short text", "and a somewhat longer one"], padding=True, return_tensors="pt")
    path = finetuner.export(net, tmp_path_factory.mktemp("texts") / "bert.onnx", tokenizer=tokenizer,
                            sample_input={"input_ids": sample["input_ids"], "attention_mask": sample["attention_mask"]})
    return net, tokenizer, path


class _RecordingSession:
    """The runtime's real onnxruntime session, noting the (batch, length) of each call."""

    def __init__(self, session) -> None:  # noqa: ANN001
        self.session, self.shapes = session, []

    def run(self, names, feed):  # noqa: ANN001, ANN201
        self.shapes.append(feed["input_ids"].shape)
        return self.session.run(names, feed)


def _texts() -> list[str]:
    rng = np.random.default_rng(0)
    words = "the model embeds each sentence of a request into a vector for neural search over documents".split()
    lengths = [3, 40, 1, 300, 12, 7, 90, 2, 25, 5, 60, 4]  # words; the 300-word text passes 256 tokens
    return [" ".join(rng.choice(words, n)) for n in lengths]


def test_export_truncates_at_the_models_own_maximum(text_model):
    meta = EmbeddingModelMeta.from_file(text_model[2])
    assert meta.preprocess["max_length"] == 256  # the sentence-transformers folder's max_seq_length


def test_texts_are_batched_by_length_and_embed_like_the_model_on_each_text_alone(text_model):
    net, tokenizer, path = text_model
    texts = _texts()
    runtime = EmbeddingRuntime(path, threads=1, batch_size=4)
    runtime.session = _RecordingSession(runtime.session)
    got = runtime.embed_texts(texts)

    lengths = [len(tokenizer(t, truncation=True, max_length=256)["input_ids"]) for t in texts]
    assert max(lengths) == 256
    expected = []
    with torch.inference_mode():
        for text in texts:
            encoded = tokenizer([text], truncation=True, max_length=256, return_tensors="pt")
            expected.append(net(encoded["input_ids"], encoded["attention_mask"]).numpy()[0])
    np.testing.assert_allclose(got, np.stack(expected), atol=1e-4, rtol=0)

    shapes = runtime.session.shapes
    assert sum(b for b, _ in shapes) == len(texts) and all(b <= 4 for b, _ in shapes)
    widths = [n for _, n in shapes]
    assert widths == sorted(widths) and set(widths) <= set(lengths) and widths[-1] == 256
    # each batch is padded to its own longest text: the tokens run are what length_batches planned
    by_length = sorted(lengths)
    assert [(stop - start, by_length[stop - 1]) for start, stop in length_batches(by_length, 4)] == shapes
    assert sum(b * n for b, n in shapes) < len(texts) * max(lengths) / 2  # padding avoided


@pytest.mark.parametrize(
    "lengths, max_batch, cuts",
    [
        ([5, 5, 5, 200], 32, [(0, 3), (3, 4)]),  # the long text alone: 3*5 + 200 + 2 calls < 4*200 + 1 call
        ([10] * 10, 4, [(0, 2), (2, 6), (6, 10)]),  # equal lengths: as few calls as max_batch allows
        ([3, 4, 5, 6], 32, [(0, 4)]),  # similar lengths: one batch
        ([], 8, []),
    ],
)
def test_length_batches_minimise_padding_plus_calls(lengths, max_batch, cuts):
    assert length_batches(lengths, max_batch) == cuts


def test_a_request_of_one_length_class_is_one_batch(text_model):
    runtime = EmbeddingRuntime(text_model[2], threads=1, batch_size=64)
    runtime.session = _RecordingSession(runtime.session)
    runtime.embed_texts(["one", "two words", "three words here"])
    assert len(runtime.session.shapes) == 1 and runtime.session.shapes[0][0] == 3
