"""Images as clients send them: the preprocessing an export records, decoding under a policy, and a real Flow
answering JPEG bytes, data URIs and files with the tuned model's embeddings; bad images fail by name.

One Flow is started in this module (a small torch CNN exported with a torchvision pipeline).
"""

from __future__ import annotations

import base64
import io
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from torchvision import transforms as T
from torchvision.transforms import v2

import finetuner
from finetuner.onnx_meta import EmbeddingModelMeta
from finetuner.serving import build_flow, endpoints
from finetuner.serving.images import ImageError, ImagePreprocessing, ImageSource, decode_image
from finetuner.serving.pipelines import image_preprocessing
from tests.processes import CALL_TIMEOUT_S

MEAN, STD = [0.485, 0.456, 0.406], [0.229, 0.224, 0.225]
TRANSFORM = T.Compose([T.Resize(40), T.CenterCrop(32), T.ToTensor(), T.Normalize(MEAN, STD)])


def _photo(height: int = 60, width: int = 90, seed: int = 0) -> Image.Image:
    """A smooth RGB picture with detail (what JPEG is made for), from a real photo shipped with scikit-learn."""
    from sklearn.datasets import load_sample_image

    photo = load_sample_image("flower.jpg" if seed % 2 else "china.jpg")
    rng = np.random.default_rng(seed)
    top, left = rng.integers(0, 427 - 3 * height // 2), rng.integers(0, 640 - 3 * width // 2)
    crop = photo[top : top + 3 * height // 2, left : left + 3 * width // 2]
    return Image.fromarray(crop).resize((width, height), Image.Resampling.BILINEAR)


def _encoded(image: Image.Image, fmt: str = "JPEG") -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, fmt, **({"quality": 90} if fmt == "JPEG" else {}))
    return buffer.getvalue()


def _png_header(width: int, height: int) -> bytes:
    """A PNG that declares ``width`` x ``height`` pixels and holds none: what a decompression bomb looks like
    before it is decoded."""
    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\x00" * 64))


@pytest.mark.parametrize(
    "pipeline, channels",
    [
        (TRANSFORM, 3),
        (T.Compose([T.Resize((30, 50), interpolation=T.InterpolationMode.BICUBIC), T.CenterCrop(40), T.ToTensor()]), 3),
        (v2.Compose([v2.Resize(48), v2.CenterCrop(36), v2.ToImage(), v2.ToDtype(torch.float32, scale=True),
                     v2.Normalize(MEAN, STD)]), 3),
        (T.Compose([T.Grayscale(), T.Resize(25), T.PILToTensor(), T.ConvertImageDtype(torch.float32)]), 1),
    ],
    ids=["resize-crop-normalize", "exact-bicubic-padded-crop", "v2", "grayscale"],
)
def test_torchvision_pipelines_are_reproduced_exactly(pipeline, channels):
    spec = image_preprocessing(pipeline, "NCHW", ("batch", channels, "h", "w"))
    for seed, fmt in [(0, "JPEG"), (1, "PNG"), (2, "WEBP")]:
        data = _encoded(_photo(seed=seed), fmt)
        expected = pipeline(Image.open(io.BytesIO(data)).convert("RGB")).numpy()
        got = spec.apply(decode_image(data))
        assert got.shape == expected.shape and got.dtype == np.float32
        np.testing.assert_allclose(got, expected, atol=1e-6, rtol=0)


def test_channels_last_layout_and_explicit_fields():
    spec = image_preprocessing({"resize": [20, 30], "mean": [127.5], "std": [127.5], "scale": 1.0}, "NHWC",
                               ("batch", 20, 30, 3))
    image = _photo()
    expected = (np.asarray(image.resize((30, 20), Image.Resampling.BILINEAR), np.float32) - 127.5) / 127.5
    np.testing.assert_allclose(spec.apply(image), expected, atol=1e-6)
    assert ImagePreprocessing.from_json(spec.to_json(), "NHWC") == spec


def test_keras_rescaling_and_normalization_layers_are_reproduced():
    from tailor_ir.imports import import_keras

    keras = import_keras()
    pipeline = keras.Sequential([
        keras.Input((20, 30, 3)),
        keras.layers.Rescaling(1 / 127.5, offset=-1.0),
        keras.layers.Normalization(axis=-1, mean=[0.1, -0.2, 0.3], variance=[0.04, 0.09, 0.25]),
    ])
    spec = image_preprocessing(pipeline, "NHWC", ("batch", 20, 30, 3))
    image = _photo(20, 30)
    expected = np.asarray(pipeline(np.asarray(image, np.float32)[None]))[0]
    np.testing.assert_allclose(spec.apply(image), expected, atol=1e-5, rtol=0)
    with pytest.raises(ImageError, match="Resizing cannot be reproduced"):
        image_preprocessing([keras.layers.Resizing(20, 30)], "NHWC", ("batch", 20, 30, 3))


def test_paddle_vision_transforms_are_reproduced_exactly():
    from tailor_ir.imports import import_paddle

    import_paddle()
    from paddle.vision import transforms as P

    pipeline = P.Compose([P.Resize(40), P.CenterCrop(32), P.ToTensor(), P.Normalize(MEAN, STD)])
    spec = image_preprocessing(pipeline, "NCHW", ("batch", 3, 32, 32))
    data = _encoded(_photo(seed=3))
    expected = np.asarray(pipeline(Image.open(io.BytesIO(data)).convert("RGB")))
    np.testing.assert_allclose(spec.apply(decode_image(data)), expected, atol=1e-6, rtol=0)
    with pytest.raises(ImageError, match="does not match the model's layout NCHW"):
        image_preprocessing(P.Compose([P.ToTensor(data_format="HWC")]), "NCHW", ("batch", 3, 32, 32))


@pytest.mark.parametrize(
    "pipeline, message",
    [
        (T.Compose([T.RandomResizedCrop(32), T.ToTensor()]), "RandomResizedCrop cannot be reproduced"),
        (T.Compose([T.CenterCrop(32), T.Resize(40), T.ToTensor()]), "Resize comes after a later step"),
        (T.Compose([T.Resize(40), T.CenterCrop(28), T.ToTensor()]), "makes 28x28 images but the model takes 32x32"),
        (T.Compose([T.Grayscale(), T.ToTensor()]), "takes 3 channel"),
        (lambda image: image, "cannot read the image preprocessing of a"),
        ({"resize": 40, "rotate": 3}, "unknown image preprocessing keys"),
    ],
    ids=["random-step", "wrong-order", "wrong-size", "wrong-channels", "a-function", "unknown-key"],
)
def test_what_serving_cannot_reproduce_is_refused_at_export(pipeline, message):
    with pytest.raises(ImageError, match=message):
        image_preprocessing(pipeline, "NCHW", ("batch", 3, 32, 32))


def test_bad_images_are_refused_with_the_reason():
    jpeg = _encoded(_photo())
    with pytest.raises(ImageError, match="broken or truncated"):
        decode_image(jpeg[: len(jpeg) // 2])
    with pytest.raises(ImageError, match="not a JPEG/PNG/WEBP image"):
        decode_image(b"just some text, not an image\n" * 10)
    with pytest.raises(ImageError, match=r"more pixels than the limit of 40,000,000 \(10000x5000\)"):
        decode_image(_png_header(10_000, 5_000))  # over our limit, under Pillow's
    with pytest.raises(ImageError, match="more pixels than the limit"):
        decode_image(_png_header(60_000, 60_000))  # over Pillow's decompression-bomb limit too
    with pytest.raises(ImageError, match="not a JPEG/PNG/WEBP"):
        decode_image(_encoded(_photo(), "BMP"))


def test_uris_are_read_only_where_allowed(tmp_path):
    inside, outside = tmp_path / "images", tmp_path / "private"
    inside.mkdir(), outside.mkdir()
    data = _encoded(_photo())
    (inside / "a.jpg").write_bytes(data)
    (outside / "secret.jpg").write_bytes(data)
    (inside / "link.jpg").symlink_to(outside / "secret.jpg")
    source = ImageSource(folder=inside)
    assert source.read_uri("a.jpg") == data
    assert source.read_uri(str(inside / "a.jpg")) == data
    assert source.read_uri((inside / "a.jpg").as_uri()) == data
    assert source.read_uri("data:image/jpeg;base64," + base64.b64encode(data).decode()) == data
    for uri in ["../private/secret.jpg", str(outside / "secret.jpg"), "link.jpg", (outside / "secret.jpg").as_uri()]:
        with pytest.raises(ImageError, match="outside the allowed folder"):
            source.read_uri(uri)
    with pytest.raises(ImageError, match="reads no local files"):
        ImageSource().read_uri(str(inside / "a.jpg"))
    with pytest.raises(ImageError, match="fetches nothing from the network"):
        source.read_uri("http://127.0.0.1:9/a.jpg")
    with pytest.raises(ImageError, match="scheme 'ftp' is not served"):
        source.read_uri("ftp://example.org/a.jpg")


def test_network_fetches_happen_only_when_enabled_and_are_bounded(tmp_path):
    import functools
    import http.server
    import threading

    data = _encoded(_photo())
    (tmp_path / "a.jpg").write_bytes(data)
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(tmp_path))
    handler.log_message = lambda *args: None
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}/a.jpg"
        with pytest.raises(ImageError, match="fetches nothing from the network"):
            ImageSource().read_uri(url)
        assert ImageSource(network=True).read_uri(url) == data
        with pytest.raises(ImageError, match="over the limit of 1,000"):
            ImageSource(network=True, max_bytes=1000).read_uri(url)
        with pytest.raises(ImageError, match="fetching .* failed"):
            ImageSource(network=True).read_uri(url.replace("a.jpg", "missing.jpg"))
    finally:
        server.shutdown()
        server.server_close()


class _SmallNet(torch.nn.Module):
    """A small CNN with a 6-d embedding for 3x32x32 images."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.conv = torch.nn.Conv2d(3, 8, 3, stride=2)
        self.fc = torch.nn.Linear(8, 6)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(torch.relu(self.conv(x)).mean(dim=(2, 3)))


@pytest.fixture(scope="module")
def image_model(tmp_path_factory):
    net = _SmallNet().eval()
    path = finetuner.export(net, tmp_path_factory.mktemp("images") / "cnn.onnx", input_shape=(3, 32, 32),
                            image_preprocessing=TRANSFORM)
    return net, path


@pytest.fixture(scope="module")
def image_folder(tmp_path_factory):
    folder = tmp_path_factory.mktemp("served")
    for seed in range(3):
        (folder / f"photo{seed}.jpg").write_bytes(_encoded(_photo(seed=seed)))
    (folder / "notes.txt").write_text("not an image")
    return folder


@pytest.fixture(scope="module")
def flow(image_model, image_folder):
    with build_flow(image_model[1], threads=1, uri_folder=image_folder, session_choice="auto") as running:
        yield running


def test_export_records_the_torchvision_preprocessing(image_model):
    meta = EmbeddingModelMeta.from_file(image_model[1])
    assert meta.preprocess["layout"] == "NCHW"
    assert meta.preprocess["image"] == {
        "mode": "RGB", "resize": 40, "resample": "bilinear", "crop": [32, 32], "scale": 1 / 255, "offset": 0.0,
        "mean": MEAN, "std": STD, "dtype": "float32",
    }
    assert meta.image_preprocessing() == image_preprocessing(TRANSFORM, "NCHW", ("b", 3, 32, 32))


def _client(flow, protocol: str):
    from jina import Client

    address = next(a for a in endpoints(flow) if a.startswith(f"{protocol}://"))
    return Client(host="127.0.0.1", port=int(address.rsplit(":", 1)[1]), protocol=protocol)


def _expected(net, files: list[Path]) -> np.ndarray:
    """finetuner.embed on the same files decoded by Pillow and preprocessed by the torchvision pipeline."""
    batch = np.stack([TRANSFORM(Image.open(f).convert("RGB")).numpy() for f in files])
    return finetuner.embed(batch, net)


@pytest.mark.parametrize("protocol", ["grpc", "http"])
def test_served_jpeg_bytes_embed_like_the_model_on_the_decoded_image(image_model, image_folder, flow, protocol):
    from docarray import Document, DocumentArray

    files = sorted(image_folder.glob("*.jpg"))
    blobs = [f.read_bytes() for f in files]
    docs = DocumentArray([
        Document(id="blob", blob=blobs[0]),
        Document(id="data-uri", uri="data:image/jpeg;base64," + base64.b64encode(blobs[1]).decode()),
        Document(id="file", uri=files[2].name),
        Document(id="tensor", tensor=TRANSFORM(Image.open(files[0]).convert("RGB")).numpy()),
    ])
    result = _client(flow, protocol).post("/encode", docs, timeout=CALL_TIMEOUT_S)
    assert [d.id for d in result] == ["blob", "data-uri", "file", "tensor"]
    expected = _expected(image_model[0], [*files, files[0]])
    np.testing.assert_allclose(result.embeddings, expected, atol=1e-4, rtol=0)


def test_drop_image_content_answers_ids_and_embeddings_without_the_images(image_folder, flow):
    from docarray import Document, DocumentArray

    files = sorted(image_folder.glob("*.jpg"))
    blob = files[0].read_bytes()

    def docs() -> DocumentArray:
        return DocumentArray([
            Document(id="blob", blob=blob),
            Document(id="data-uri", uri="data:image/jpeg;base64," + base64.b64encode(blob).decode()),
            Document(id="file", uri=files[1].name),
        ])

    client = _client(flow, "http")
    echoed = client.post("/encode", docs(), timeout=CALL_TIMEOUT_S)
    dropped = client.post("/encode", docs(), parameters={"drop_image_content": True}, timeout=CALL_TIMEOUT_S)
    assert echoed[0].blob == blob and echoed[1].uri.startswith("data:")
    assert [d.id for d in dropped] == ["blob", "data-uri", "file"]
    assert not dropped[0].blob and not dropped[1].uri and dropped[2].uri == files[1].name
    np.testing.assert_array_equal(dropped.embeddings, echoed.embeddings)


def test_bad_images_fail_their_request_by_name_and_the_flow_keeps_serving(image_folder, tmp_path, flow):
    from docarray import Document, DocumentArray
    from jina.excepts import BadServer

    jpeg = (image_folder / "photo0.jpg").read_bytes()
    (tmp_path / "outside.jpg").write_bytes(jpeg)
    bad = {
        "truncated-jpeg": Document(id="truncated-jpeg", blob=jpeg[: len(jpeg) // 2]),
        "text-blob": Document(id="text-blob", blob=b"hello, I am a text file\n"),
        "huge": Document(id="huge", blob=_png_header(60_000, 60_000)),
        "outside": Document(id="outside", uri=str(tmp_path / "outside.jpg")),
        "text-file": Document(id="text-file", uri="notes.txt"),
    }
    client = _client(flow, "grpc")
    with pytest.raises(BadServer) as info:
        client.post("/encode", DocumentArray([Document(id="fine", blob=jpeg), *bad.values()]), timeout=CALL_TIMEOUT_S)
    status = info.value.args[0].status
    text = f"{status.description} {status.exception.args}"
    assert "'fine'" not in text
    for doc_id, reason in [("truncated-jpeg", "truncated"), ("text-blob", "not a JPEG/PNG/WEBP"),
                           ("huge", "more pixels than the limit"), ("outside", "outside the allowed folder"),
                           ("text-file", "not a JPEG/PNG/WEBP")]:
        assert f"Document {doc_id!r}: " in text and reason in text, (doc_id, text)
    after = client.post("/encode", DocumentArray([Document(id="fine", blob=jpeg)]), timeout=CALL_TIMEOUT_S)
    assert after.embeddings.shape == (1, 6)
