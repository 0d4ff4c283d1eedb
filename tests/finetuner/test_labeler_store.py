"""The label store (SQLite, committed per submit), the workdir, and how Documents become cards."""

from __future__ import annotations

import base64
import json
import struct
import zlib

import numpy as np
import pytest

from finetuner.labeler.pool import Workdir, png_bytes, render_card, tensor_as_image
from finetuner.labeler.store import Label, LabelError, LabelStore, parse_labels

IDS = {"a", "b", "c", "d"}


def test_a_submit_is_on_disk_as_soon_as_it_returns(tmp_path):
    store = LabelStore(tmp_path / "labels.sqlite")
    store.submit(parse_labels([{"query_id": "a", "match_id": "b", "label": 1}], IDS), client="tab1")
    other = LabelStore(tmp_path / "labels.sqlite")  # a second connection, as another process would open it
    assert other.labels() == [Label("a", "b", 1)]
    assert other.counts() == {"labelled": 1, "positive": 1, "negative": 0, "queries": 1, "rounds": 1}


def test_resubmitting_a_pair_updates_it(tmp_path):
    store = LabelStore(tmp_path / "labels.sqlite")
    store.submit([Label("a", "b", 1), Label("a", "c", 1)])
    store.submit([Label("a", "c", -1)])
    assert sorted(store.labels(), key=lambda x: x.match_id) == [Label("a", "b", 1), Label("a", "c", -1)]
    assert store.counts()["rounds"] == 2


def test_a_failing_submit_rolls_back_entirely(tmp_path):
    store = LabelStore(tmp_path / "labels.sqlite")
    store.submit([Label("a", "b", 1)])
    with pytest.raises(Exception, match="CHECK constraint"):
        store.submit([Label("a", "c", 1), Label("a", "d", 5)])  # bypasses parse_labels: the schema still refuses
    assert store.labels() == [Label("a", "b", 1)] and store.counts()["rounds"] == 1


@pytest.mark.parametrize(
    ("items", "message"),
    [
        ([{"query_id": "a", "match_id": "z", "label": 1}], "unknown document id 'z' in match_id"),
        ([{"query_id": 3, "match_id": "b", "label": 1}], "unknown document id 3 in query_id"),
        ([{"query_id": "a", "match_id": "b", "label": 0}], "got 0"),
        ([{"query_id": "a", "match_id": "b", "label": None}], "got None"),
        (["a"], "label #0 is str"),
        (None, "must be a list"),
    ],
)
def test_malformed_labels_are_named(items, message):
    with pytest.raises(LabelError, match=message):
        parse_labels(items, IDS)


def test_label_spellings_are_normalised():
    raw = [{"query_id": "a", "match_id": m, "label": v} for m, v in zip("bcd", [True, "irrelevant", -1.0])]
    assert [lab.label for lab in parse_labels(raw, IDS)] == [1, -1, -1]


def test_settings_persist(tmp_path):
    LabelStore(tmp_path / "s.sqlite").save_settings({"top_k": 4, "strategy": "random"})
    assert LabelStore(tmp_path / "s.sqlite").settings() == {"top_k": 4, "strategy": "random"}


def test_the_pool_round_trips_through_the_workdir(tmp_path):
    from docarray import Document, DocumentArray

    workdir = Workdir(tmp_path / "wd").create()
    docs = DocumentArray([Document(id="x", tensor=np.arange(4.0)), Document(id="y", text="hello")])
    workdir.save_pool(docs)
    again = workdir.load_pool()
    assert [d.id for d in again] == ["x", "y"] and again[1].text == "hello"
    np.testing.assert_array_equal(again[0].tensor, np.arange(4.0))
    assert not list(workdir.root.glob(".*"))  # no temporary file left behind


def test_the_pool_summary_answers_whether_the_pool_is_text_without_reading_it(tmp_path):
    """pool.json says whether the pool is all text (its default settings) without loading pool.bin; a new pool
    replaces it; a workdir without one (an older Labeler's) reads the pool instead."""
    from docarray import Document, DocumentArray

    workdir = Workdir(tmp_path / "wd").create()
    workdir.save_pool(DocumentArray([Document(text="a"), Document(text="b")]))
    assert json.loads(workdir.pool_summary.read_text()) == {"items": 2, "text": True}
    pool_bytes = workdir.pool.read_bytes()
    workdir.pool.write_bytes(b"not a pool")  # the answer must come from pool.json alone
    assert workdir.pool_is_text() is True
    workdir.save_pool(DocumentArray([Document(text="a"), Document(tensor=np.zeros(2))]))
    assert workdir.pool_is_text() is False and json.loads(workdir.pool_summary.read_text())["items"] == 2
    workdir.pool.write_bytes(pool_bytes)
    workdir.pool_summary.unlink()
    assert workdir.pool_is_text() is True  # read from the (all-text) pool itself


def test_checkpoints_count_up_and_keep_only_the_newest(tmp_path):
    torch = pytest.importorskip("torch")
    from finetuner.labeler.training import get_weights

    workdir = Workdir(tmp_path / "wd").create()
    model = torch.nn.Linear(2, 2)
    first = workdir.write_checkpoint(get_weights(model), {"loss": 1.0})
    with torch.no_grad():
        model.weight.fill_(3.0)
    second = workdir.write_checkpoint(get_weights(model), {"loss": 0.5})
    assert (first["version"], second["version"]) == (1, 2)
    assert sorted(p.name for p in workdir.checkpoints.iterdir()) == ["latest.json", "model-2.npz"]
    assert list(workdir.read_checkpoint()) == ["weight", "bias"]
    fresh = torch.nn.Linear(2, 2)
    assert workdir.load_checkpoint_into(fresh)["metrics"] == {"loss": 0.5}
    assert bool((fresh.weight == 3.0).all())


def test_checkpoint_names_that_numpy_savez_would_trip_on_survive(tmp_path):
    workdir = Workdir(tmp_path / "wd").create()
    weights = {"file": np.ones(2, np.float32), "dense/kernel:0": np.eye(2), "names": np.zeros((), np.int64)}
    workdir.write_checkpoint(weights, {})
    back = workdir.read_checkpoint()
    assert list(back) == list(weights)
    for name, value in weights.items():
        np.testing.assert_array_equal(back[name], value)
        assert back[name].dtype == value.dtype


def test_torch_checkpoints_of_older_labelers_still_load(tmp_path):
    torch = pytest.importorskip("torch")
    workdir = Workdir(tmp_path / "wd").create()
    model = torch.nn.Linear(2, 2)
    with torch.no_grad():
        model.weight.fill_(2.0)
    torch.save(model.state_dict(), workdir.checkpoints / "model-1.pt")
    workdir.latest.write_text('{"version": 1, "path": "model-1.pt", "metrics": {}, "time": 0}')
    fresh = torch.nn.Linear(2, 2)
    assert workdir.load_checkpoint_into(fresh)["version"] == 1
    assert bool((fresh.weight == 2.0).all())
    assert workdir.write_checkpoint({"w": np.zeros(1)}, {})["path"] == "model-2.npz"
    assert not (workdir.checkpoints / "model-1.pt").exists()


def _decode_png(data: bytes) -> tuple[int, int, int]:
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    width, height, depth, color = struct.unpack(">IIBB", data[16:26])
    idat_len = struct.unpack(">I", data[33:37])[0]
    raw = zlib.decompress(data[41 : 41 + idat_len])
    channels = {0: 1, 2: 3, 6: 4}[color]
    assert len(raw) == height * (1 + width * channels)
    return width, height, channels


def test_png_bytes_is_a_valid_png():
    assert _decode_png(png_bytes(np.zeros((5, 7), np.uint8))) == (7, 5, 1)
    assert _decode_png(png_bytes(np.zeros((3, 4, 3), np.uint8))) == (4, 3, 3)


@pytest.mark.parametrize(
    ("shape", "image_shape"),
    [((64,), (8, 8)), ((8, 8), (8, 8)), ((3, 10, 12), (10, 12, 3)), ((10, 12, 3), (10, 12, 3)), ((1, 6, 6), (6, 6)),
     ((10,), None), ((2, 3, 4, 5), None)],
)
def test_tensors_that_look_like_images_are_shown_as_images(shape, image_shape):
    image = tensor_as_image(np.random.default_rng(0).random(shape))
    assert (image is None) if image_shape is None else (image.shape == image_shape and image.dtype == np.uint8)


def test_cards_for_each_kind_of_content(tmp_path):
    from docarray import Document

    png = png_bytes(np.full((4, 4), 200, np.uint8))
    path = tmp_path / "pic.png"
    path.write_bytes(png)
    cases = {
        "tensor": Document(tensor=np.ones((8, 8))),
        "blob": Document(blob=png),
        "uri": Document(uri=str(path)),
        "text": Document(text="a cat on a mat"),
        "vector": Document(tensor=np.arange(10.0)),
        "textblob": Document(blob=b"plain words"),
    }
    cards = {name: render_card(doc) for name, doc in cases.items()}
    for name in ("tensor", "blob", "uri"):
        assert cards[name]["kind"] == "image" and cards[name]["src"].startswith("data:image/png;base64,")
    assert base64.b64decode(cards["blob"]["src"].split(",", 1)[1]) == png
    assert cards["text"] == {"id": cases["text"].id, "kind": "text", "text": "a cat on a mat"}
    assert cards["vector"]["kind"] == "text" and cards["vector"]["text"].startswith("tensor 10:")
    assert cards["textblob"]["text"] == "plain words"
