"""The torch zoo sweep (``models/sweep.py``): every torchvision classification builder, torchvision's video
classifiers and semantic-segmentation models, the common Hugging Face encoder families (text, vision, audio)
from small configs, and typical hand-written modules.

Each entry builds ``(model, sample_input, reference)``: the reference is what the default cut must return,
computed natively in eval mode — the input of the final classifier (the last ``nn.Linear`` / pointwise
``nn.Conv{1,2,3}d`` to run, caught by a forward hook), or, for encoders without a classifier, the first output
pooled the way ``pooling="auto"`` pools it (mean over space for feature maps, masked mean over tokens when there
is an attention mask, plain mean otherwise).

**Dense prediction** (segmentation): the default cut is the input of the per-pixel classifier — the final 1x1
convolution whose class scores are only upsampled to the input size — averaged over space by
``pooling="auto"``: the same rule as for a classifier (cut off the layer that maps features to classes, keep
everything before it). FCN and DeepLabV3 have one such classifier. LR-ASPP adds two (a low- and a
high-resolution one), so no single tensor is "the classifier's input": its entry names the layer, the
backbone's last block (``layer_name="backbone.16"``, MobileNetV3's 960-channel features), and returns a
fourth item, that layer name.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from functools import partial
from typing import Any

import numpy as np
import torch
from torch import nn

BATCH = 2
SEQ_LEN = 8
VOCAB = 100
# the smallest input side each torchvision family accepts (64 px otherwise)
SIDE = {"inception_v3": 75, "alexnet": 64, "maxvit_t": 224}
# builders that take their input size as an argument (ViT: two patches a side)
BUILDER_KWARGS = {
    "vit_b_16": {"image_size": 32}, "vit_b_32": {"image_size": 64}, "vit_l_16": {"image_size": 32},
    "vit_l_32": {"image_size": 64}, "vit_h_14": {"image_size": 28},
}
SIDE.update({"vit_b_16": 32, "vit_b_32": 64, "vit_l_16": 32, "vit_l_32": 64, "vit_h_14": 28})

FAST = ("squeezenet1_1", "shufflenet_v2_x0_5", "hf_bert", "hf_wav2vec2", "text_cnn", "bi_gru")

Entry = Callable[[], tuple[nn.Module, Any, np.ndarray]]


# --------------------------------------------------------------------------- references
def classifier_input(model: nn.Module, sample: Any) -> np.ndarray:
    """The input of the last nn.Linear / 1x1 nn.Conv2d that runs in ``model(sample)`` (eval mode), pooled."""
    seen: list[torch.Tensor] = []

    def hook(module: nn.Module, inputs: tuple[Any, ...]) -> None:
        seen.append(inputs[0].detach())

    handles = [m.register_forward_pre_hook(hook) for m in model.modules() if isinstance(m, nn.Linear)
               or (isinstance(m, (nn.Conv1d, nn.Conv2d, nn.Conv3d)) and set(m.kernel_size) == {1} and m.groups == 1)]
    model.eval()
    try:
        with torch.no_grad():
            _call(model, sample)
    finally:
        for handle in handles:
            handle.remove()
    return pooled(seen[-1], None)


def pooled(features: torch.Tensor, mask: torch.Tensor | None) -> np.ndarray:
    """``pooling="auto"``: mean over space for (B, C, *spatial), masked / plain mean over tokens for (B, T, H)."""
    if features.dim() >= 4:
        return features.mean(dim=tuple(range(2, features.dim()))).numpy()
    if features.dim() == 3:
        if mask is None:
            return features.mean(dim=1).numpy()
        m = mask.to(features.dtype).unsqueeze(-1)
        return ((features * m).sum(1) / m.sum(1)).numpy()
    return features.numpy()


def first_output(model: nn.Module, sample: Any) -> np.ndarray:
    """The model's first output (an encoder's last hidden state), pooled like ``pooling="auto"``."""
    model.eval()
    with torch.no_grad():
        out = _call(model, sample)
    first = out[0] if isinstance(out, (tuple, list)) else next(iter(out.values())) if isinstance(out, dict) else out
    mask = sample.get("attention_mask") if isinstance(sample, dict) else None
    return pooled(first.detach(), mask)


def _call(model: nn.Module, sample: Any) -> Any:
    if isinstance(sample, dict):
        return model(**sample)
    if isinstance(sample, tuple):
        return model(*sample)
    return model(sample)


def tokens(with_mask: bool = True, vocab: int = VOCAB) -> dict[str, torch.Tensor]:
    """Token ids (the second row padded) and, with ``with_mask``, the attention mask."""
    gen = torch.Generator().manual_seed(0)
    ids = torch.randint(1, vocab, (BATCH, SEQ_LEN), generator=gen)
    mask = torch.ones_like(ids)
    ids[1, SEQ_LEN // 2 :] = 0
    mask[1, SEQ_LEN // 2 :] = 0
    return {"input_ids": ids, "attention_mask": mask} if with_mask else {"input_ids": ids}


# --------------------------------------------------------------------------- torchvision
def torchvision_entry(name: str) -> tuple[nn.Module, Any, np.ndarray]:
    import torchvision

    torch.manual_seed(0)
    kwargs: dict[str, Any] = dict(BUILDER_KWARGS.get(name, {}))
    if name in ("googlenet", "inception_v3"):
        kwargs["init_weights"] = True
    model = torchvision.models.get_model(name, weights=None, **kwargs)
    side = SIDE.get(name, 64)
    sample = torch.randn(BATCH, 3, side, side, generator=torch.Generator().manual_seed(0))
    return model, sample, classifier_input(model, sample)


# --------------------------------------------------------------------------- torchvision video and segmentation
# (frames, side) of each video clip: 4 x 32 px, or the fixed size that S3D's pooling and MViT's position
# tables need (the builders fix MViT's size; torchvision's weights list S3D's minimum as 14 x 224)
VIDEO_CLIP = {"s3d": (14, 224), "mvit_v1_b": (16, 224), "mvit_v2_s": (16, 224)}


def video_entry(name: str) -> tuple[nn.Module, Any, np.ndarray]:
    """A torchvision video classifier on a (batch, 3, frames, side, side) clip; the reference is its fc's input."""
    import torchvision

    torch.manual_seed(0)
    model = torchvision.models.get_model(name, weights=None)
    frames, side = VIDEO_CLIP.get(name, (4, 32))
    sample = torch.randn(BATCH, 3, frames, side, side, generator=torch.Generator().manual_seed(0))
    return model, sample, classifier_input(model, sample)


# the layer to cut at where the default cut is ambiguous (see the module's docstring)
SEGMENTATION_LAYER = {"lraspp_mobilenet_v3_large": "backbone.16"}


def segmentation_entry(name: str) -> tuple[Any, ...]:
    """A torchvision segmentation model (64 px); the reference is its per-pixel classifier's input, pooled."""
    import torchvision

    torch.manual_seed(0)
    model = torchvision.models.get_model(name, weights=None, weights_backbone=None)
    sample = _image(64)
    layer = SEGMENTATION_LAYER.get(name)
    if layer is None:
        return model, sample, classifier_input(model, sample)
    return model, sample, layer_output(model, sample, layer), layer


def layer_output(model: nn.Module, sample: Any, layer: str) -> np.ndarray:
    """The output of the submodule named ``layer`` in ``model(sample)`` (eval mode), pooled."""
    seen: list[torch.Tensor] = []
    handle = model.get_submodule(layer).register_forward_hook(lambda _m, _i, out: seen.append(out.detach()))
    model.eval()
    try:
        with torch.no_grad():
            _call(model, sample)
    finally:
        handle.remove()
    return pooled(seen[-1], None)


def vision_extras() -> dict[str, Entry]:
    """torchvision's video classifiers and segmentation models (not in ``list_models(module=models)``)."""
    import torchvision

    table: dict[str, Entry] = {}
    for name in torchvision.models.list_models(module=torchvision.models.video):
        table[f"video_{name}"] = partial(video_entry, name)
    for name in torchvision.models.list_models(module=torchvision.models.segmentation):
        table[f"seg_{name}"] = partial(segmentation_entry, name)
    return table


# --------------------------------------------------------------------------- Hugging Face
_SMALL = {"hidden_size": 32, "num_hidden_layers": 2, "num_attention_heads": 2, "intermediate_size": 64}


def _hf_text(config_cls: str, model_cls: str, **config: Any) -> tuple[nn.Module, Any, np.ndarray]:
    import transformers

    torch.manual_seed(0)
    settings = {"vocab_size": VOCAB, "max_position_embeddings": 64, **_SMALL, **config}
    cfg = getattr(transformers, config_cls)(**settings)
    cfg._attn_implementation = "eager"
    model = getattr(transformers, model_cls)(cfg)
    sample = tokens()
    return model, sample, first_output(model, sample)


def _hf_vision(config_cls: str, model_cls: str, side: int = 32, **config: Any) -> tuple[nn.Module, Any, np.ndarray]:
    import transformers

    torch.manual_seed(0)
    cfg = getattr(transformers, config_cls)(**config)
    cfg._attn_implementation = "eager"
    model = getattr(transformers, model_cls)(cfg)
    sample = {"pixel_values": torch.randn(BATCH, 3, side, side, generator=torch.Generator().manual_seed(0))}
    return model, sample, first_output(model, sample)


def _hf_audio(config_cls: str, model_cls: str, sample: dict[str, tuple[int, ...]], **config: Any
              ) -> tuple[nn.Module, Any, np.ndarray]:
    """An audio encoder from a small config on random float inputs of the given shapes (batch first)."""
    import transformers

    torch.manual_seed(0)
    cfg = getattr(transformers, config_cls)(**config)
    cfg._attn_implementation = "eager"
    module, _, cls = model_cls.rpartition(":")
    model = getattr(importlib.import_module(module) if module else transformers, cls)(cfg)
    gen = torch.Generator().manual_seed(0)
    value = {k: torch.randn(BATCH, *shape, generator=gen) for k, shape in sample.items()}
    return model, value, first_output(model, value)


_SMALL_AUDIO = {**_SMALL, "conv_dim": (16, 16), "conv_stride": (5, 2), "conv_kernel": (10, 3),
                "num_conv_pos_embeddings": 16, "num_conv_pos_embedding_groups": 2}

HF: dict[str, Entry] = {
    "hf_bert": partial(_hf_text, "BertConfig", "BertModel"),
    "hf_roberta": partial(_hf_text, "RobertaConfig", "RobertaModel", pad_token_id=0),
    "hf_distilbert": partial(_hf_text, "DistilBertConfig", "DistilBertModel", dim=32, n_layers=2, n_heads=2,
                             hidden_dim=64),
    "hf_electra": partial(_hf_text, "ElectraConfig", "ElectraModel", embedding_size=16),
    "hf_albert": partial(_hf_text, "AlbertConfig", "AlbertModel", embedding_size=16),
    "hf_deberta_v2": partial(_hf_text, "DebertaV2Config", "DebertaV2Model"),
    "hf_mpnet": partial(_hf_text, "MPNetConfig", "MPNetModel"),
    "hf_xlm_roberta": partial(_hf_text, "XLMRobertaConfig", "XLMRobertaModel", pad_token_id=0),
    "hf_t5_encoder": partial(_hf_text, "T5Config", "T5EncoderModel", d_model=32, d_kv=16, d_ff=64, num_layers=2,
                             num_heads=2),
    "hf_clip_text": partial(_hf_text, "CLIPTextConfig", "CLIPTextModel"),
    "hf_vit": partial(_hf_vision, "ViTConfig", "ViTModel", image_size=32, patch_size=16, **_SMALL),
    "hf_deit": partial(_hf_vision, "DeiTConfig", "DeiTModel", image_size=32, patch_size=16, **_SMALL),
    "hf_swin": partial(_hf_vision, "SwinConfig", "SwinModel", image_size=32, patch_size=4, embed_dim=16,
                       depths=[1, 1], num_heads=[1, 2], window_size=4),
    "hf_convnext": partial(_hf_vision, "ConvNextConfig", "ConvNextModel", hidden_sizes=[16, 32],
                           depths=[1, 1], num_stages=2),
    "hf_clip_vision": partial(_hf_vision, "CLIPVisionConfig", "CLIPVisionModel", image_size=32, patch_size=16,
                              **_SMALL),
    # raw waveform (400 samples -> 39 frames) and a log-mel spectrogram (8 bins x 32 frames)
    "hf_wav2vec2": partial(_hf_audio, "Wav2Vec2Config", "Wav2Vec2Model", {"input_values": (400,)}, **_SMALL_AUDIO),
    "hf_hubert": partial(_hf_audio, "HubertConfig", "HubertModel", {"input_values": (400,)}, **_SMALL_AUDIO),
    "hf_whisper_encoder": partial(
        _hf_audio, "WhisperConfig", "transformers.models.whisper.modeling_whisper:WhisperEncoder",
        {"input_features": (8, 32)}, d_model=32, encoder_layers=2, encoder_attention_heads=2, encoder_ffn_dim=64,
        decoder_layers=1, decoder_attention_heads=2, decoder_ffn_dim=64, num_mel_bins=8, max_source_positions=16,
    ),
}


# --------------------------------------------------------------------------- hand-written modules
class TextCNN(nn.Module):
    """Embedding -> Conv1d (two widths) -> max over time -> Linear."""

    def __init__(self) -> None:
        super().__init__()
        self.embed = nn.Embedding(VOCAB, 16)
        self.convs = nn.ModuleList([nn.Conv1d(16, 8, k, padding=k // 2) for k in (3, 5)])
        self.fc = nn.Linear(16, 4)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        x = self.embed(ids).transpose(1, 2)
        return self.fc(torch.cat([torch.relu(c(x)).amax(dim=2) for c in self.convs], dim=1))


class BiRNN(nn.Module):
    """Embedding -> bidirectional GRU / LSTM (2 layers) -> mean over time -> Linear."""

    def __init__(self, cell: type[nn.Module]) -> None:
        super().__init__()
        self.embed = nn.Embedding(VOCAB, 16)
        self.rnn = cell(16, 12, num_layers=2, batch_first=True, bidirectional=True)
        self.fc = nn.Linear(24, 4)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        out, _ = self.rnn(self.embed(ids))
        return self.fc(out.mean(dim=1))


class EinsumAttention(nn.Module):
    """Self-attention written with einsum + masked softmax, mean over tokens, Linear."""

    def __init__(self) -> None:
        super().__init__()
        self.embed = nn.Embedding(VOCAB, 16)
        self.qkv = nn.Linear(16, 48)
        self.fc = nn.Linear(16, 4)

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        q, k, v = self.qkv(self.embed(input_ids)).chunk(3, dim=-1)
        scores = torch.einsum("bqd,bkd->bqk", q, k) / 4.0
        scores = scores.masked_fill(attention_mask[:, None, :] == 0, float("-inf"))
        h = torch.einsum("bqk,bkd->bqd", scores.softmax(-1), v)
        m = attention_mask.unsqueeze(-1).to(h.dtype)
        return self.fc((h * m).sum(1) / m.sum(1))


class ChunkSplit(nn.Module):
    """A CNN whose blocks use torch.chunk and torch.split (channel split and gating)."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 16, 3, padding=1)
        self.fc = nn.Linear(10, 4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        a, b = torch.chunk(self.conv(x), 2, dim=1)
        gated = a * torch.sigmoid(b)
        first, rest = torch.split(gated, [2, 6], dim=1)
        return self.fc(torch.cat([first, rest, first * 2], dim=1).mean(dim=(2, 3)))


class Interpolate(nn.Module):
    """A small U-shaped CNN: downsample, F.interpolate back up (bilinear and nearest), skip add."""

    def __init__(self) -> None:
        super().__init__()
        self.down = nn.Conv2d(3, 8, 3, stride=2, padding=1)
        self.skip = nn.Conv2d(3, 8, 1)
        self.fc = nn.Linear(8, 4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        d = torch.relu(self.down(x))
        up = nn.functional.interpolate(d, scale_factor=2.0, mode="bilinear", align_corners=False)
        near = nn.functional.interpolate(d, size=x.shape[-2:], mode="nearest")
        return self.fc((up + near + self.skip(x)).mean(dim=(2, 3)))


class CumsumWhere(nn.Module):
    """Position ids by cumsum over the mask (RoBERTa style), where() and masked_fill, masked mean, Linear."""

    def __init__(self) -> None:
        super().__init__()
        self.embed = nn.Embedding(VOCAB, 16)
        self.pos = nn.Embedding(SEQ_LEN + 2, 16)
        self.fc = nn.Linear(16, 4)

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        positions = torch.cumsum(attention_mask, dim=1) * attention_mask
        h = self.embed(input_ids) + self.pos(positions)
        h = torch.where(h > 0, h, 0.1 * h).masked_fill(attention_mask.unsqueeze(-1) == 0, 0.0)
        return self.fc(h.sum(1) / attention_mask.sum(1, keepdim=True).to(h.dtype))


class TwoInputs(nn.Module):
    """An image branch and a vector branch, concatenated, returning a dict (logits first)."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 8, 3, padding=1)
        self.dense = nn.Linear(5, 8)
        self.fc = nn.Linear(16, 4)

    def forward(self, image: torch.Tensor, extra: torch.Tensor) -> dict[str, torch.Tensor]:
        h = torch.cat([torch.relu(self.conv(image)).mean(dim=(2, 3)), torch.relu(self.dense(extra))], dim=1)
        return {"logits": self.fc(h), "features": h}


def _hand(factory: Callable[[], nn.Module], sample: Callable[[], Any]) -> tuple[nn.Module, Any, np.ndarray]:
    torch.manual_seed(0)
    model = factory()
    value = sample()
    return model, value, classifier_input(model, value)


def _image(side: int = 16) -> torch.Tensor:
    return torch.randn(BATCH, 3, side, side, generator=torch.Generator().manual_seed(0))


HAND: dict[str, Entry] = {
    "text_cnn": partial(_hand, TextCNN, lambda: tokens(with_mask=False)["input_ids"]),
    "bi_gru": partial(_hand, partial(BiRNN, nn.GRU), lambda: tokens(with_mask=False)["input_ids"]),
    "bi_lstm": partial(_hand, partial(BiRNN, nn.LSTM), lambda: tokens(with_mask=False)["input_ids"]),
    "einsum_attention": partial(_hand, EinsumAttention, tokens),
    "chunk_split": partial(_hand, ChunkSplit, _image),
    "interpolate": partial(_hand, Interpolate, _image),
    "cumsum_where_masked_fill": partial(_hand, CumsumWhere, tokens),
    "two_inputs_dict_output": partial(
        _hand, TwoInputs, lambda: (_image(), torch.randn(BATCH, 5, generator=torch.Generator().manual_seed(1)))
    ),
}


def entries() -> dict[str, Entry]:
    """Every model of the torch sweep: torchvision classification, video and segmentation, Hugging Face
    encoders, hand-written modules."""
    import torchvision

    names = torchvision.models.list_models(module=torchvision.models)
    table: dict[str, Entry] = {name: partial(torchvision_entry, name) for name in names}
    table.update(vision_extras())
    table.update(HF)
    table.update(HAND)
    return table
