"""Text and image pools through the Labeler on a real Flow: ``fit``'s data options drive embedding and training.

The text test is the issue's new user: the packaged pretrained all-MiniLM-L6-v2 tailored with ``to_embedding``,
``finetuner.fit(model, docs, interactive=True, collate_fn=tokenizer_collate(tokenizer))``.
"""

from __future__ import annotations

import json
import threading
import time
import urllib.error
import urllib.request

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("jina")

TOKEN = "labeler-inputs-test-token"  # the Labeler refuses requests without its per-run token

TOPICS = {
    "food": ["a bowl of tomato soup with basil", "freshly baked sourdough bread", "grilled salmon with lemon",
             "a chocolate cake for dessert", "spicy noodles with garlic", "a salad of lettuce and cucumber"],
    "space": ["a telescope pointed at distant galaxies", "the orbit of the moon around the earth",
              "astronauts aboard the space station", "a comet passing near the sun",
              "the rings of the planet saturn", "a rocket launch into orbit"],
    "sport": ["the striker scored a goal in the final minute", "a tennis match on a grass court",
              "runners crossing the marathon finish line", "the basketball team won the championship",
              "a swimmer breaking the world record", "cyclists climbing a mountain stage"],
}


def text_pool():
    from docarray import Document, DocumentArray

    return DocumentArray(
        Document(id=f"{topic}-{i}", text=text) for topic, texts in TOPICS.items() for i, text in enumerate(texts)
    )


def call(port: int, method: str, path: str, body: object = None) -> dict:
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}{path}", data=None if body is None else json.dumps(body).encode(), method=method
    )
    request.add_header("Content-Type", "application/json")
    request.add_header("X-Finetuner-Token", TOKEN)
    with urllib.request.urlopen(request, timeout=120) as response:
        return json.loads(response.read())


def wait_until_up(port: int, thread: threading.Thread, timeout: float = 120) -> None:
    deadline = time.time() + timeout
    while True:
        try:
            call(port, "GET", "/api/progress")
            return
        except (OSError, urllib.error.HTTPError):
            assert thread.is_alive() and time.time() < deadline, "the Labeler did not come up"
            time.sleep(0.3)


def label_by_topic(port: int, questions: dict) -> int:
    """Answer every question as a user who knows the topics (the id prefix) would; returns the labels sent."""
    labels = [
        {"query_id": q["query_id"], "match_id": m["id"],
         "label": 1 if m["id"].split("-")[0] == q["query_id"].split("-")[0] else -1}
        for q in questions["questions"] for m in q["matches"]
    ]
    call(port, "POST", "/api/labels", {"labels": labels})
    return len(labels)


def fit_to_version(port: int, version: int, timeout: float = 180) -> dict:
    assert call(port, "POST", "/api/fit", {})["started"]
    deadline = time.time() + timeout
    while True:
        progress = call(port, "GET", "/api/progress")
        assert progress["fit"]["error"] is None and progress["index"]["error"] is None, progress
        if progress["index"]["model_version"] >= version:
            return progress
        assert time.time() < deadline, f"model v{version} did not arrive: {progress}"
        time.sleep(0.5)


def test_fit_interactive_labels_text_with_the_same_collate_fn_and_returns_the_tuned_model(
    minilm_embedding, tmp_path
):
    """Before: the Flow aborted at start ("the pool's content is str"); collate_fn was not handed over."""
    from jina.helper import random_port

    import finetuner
    from finetuner.data import tokenizer_collate
    from finetuner.labeler.inputs import ModelInputs
    from finetuner.labeler.training import get_weights
    from models.torch_zoo import minilm_tokenizer

    model = minilm_embedding[0]
    collate = tokenizer_collate(minilm_tokenizer())
    before = get_weights(model)
    port = random_port()
    result: dict = {}
    options = {"port": port, "workdir": tmp_path / "wd", "open_browser": False, "top_k": 4, "questions": 3,
               "token": TOKEN}
    thread = threading.Thread(
        target=lambda: result.update(model=finetuner.fit(
            model, text_pool(), interactive=True, epochs=2, collate_fn=collate, labeler_options=options
        )),
        daemon=True,
    )
    thread.start()
    wait_until_up(port, thread)
    first = call(port, "GET", "/api/questions?client=t")
    assert first["model_version"] == 0 and len(first["questions"]) == 3
    assert first["strategy"] == "diversity"  # a text pool's default (no strategy was given)
    assert {card["kind"] for card in first["cards"].values()} == {"text"}
    assert label_by_topic(port, first) == 12
    progress = fit_to_version(port, 1)
    assert progress["fit"]["metrics"]["labels"] == 12
    after = call(port, "GET", "/api/questions?client=t")
    assert after["model_version"] == 1
    assert not {q["query_id"] for q in after["questions"]} & {q["query_id"] for q in first["questions"]}
    saved = call(port, "POST", "/api/save", {})  # the page's save: the tokenizer goes beside the model
    call(port, "POST", "/api/stop", {})
    thread.join(timeout=60)
    assert not thread.is_alive(), "fit(interactive=True) did not return after Finish"
    tuned = result["model"]
    assert tuned is model
    assert any(not np.array_equal(before[k], v) for k, v in get_weights(tuned).items())

    inputs = ModelInputs.for_model(tuned, collate_fn=collate)  # without the token_type_ids the model does not take
    tuned_embeddings = finetuner.embed(inputs.collate(["a rocket on the launch pad", "a plate of pasta"]), tuned)
    assert tuned_embeddings.shape == (2, 32)  # (exported and served: tests/browser/test_labeler_text_browser.py)
    assert finetuner.api.tokenizer_of(tuned) is collate.tokenizer  # finetuner.export(tuned, path) writes it

    # `finetuner label --model exports/model.onnx` on texts needs nothing else: the tokenizer is found beside it
    from finetuner.cli import _label_inputs, build_parser
    from finetuner.labeler.sources import load_pool

    assert (tmp_path / "wd" / "exports" / "model.tokenizer" / "tokenizer.json").is_file(), saved
    (tmp_path / "t.txt").write_text("a rocket on the launch pad\na plate of pasta\n")
    args = build_parser().parse_args(["label", "--data", str(tmp_path / "t.txt"), "--model", saved["path"]])
    again = _label_inputs.data_options(args, load_pool(tmp_path / "t.txt"), model=None)["collate_fn"]
    np.testing.assert_array_equal(again(["a plate of pasta"])["input_ids"], collate(["a plate of pasta"])["input_ids"])


def test_the_tokenizer_option_makes_the_collate_fn_and_travels_with_the_tuned_model(tmp_path):
    """``fit(..., interactive=True, tokenizer=tok)`` as without ``interactive``: the tokenizer tokenises the pool
    (keeping the model's inputs) and is remembered for the returned model, so ``finetuner.export`` writes it."""
    from tokenizers import Tokenizer, models, pre_tokenizers

    import finetuner
    from finetuner.labeler import Labeler
    from finetuner.labeler.inputs import ModelInputs

    tokenizer = Tokenizer(models.WordLevel({"[UNK]": 0, "soup": 1, "bread": 2}, unk_token="[UNK]"))
    tokenizer.pre_tokenizer = pre_tokenizers.Whitespace()
    model = torch.nn.Sequential(torch.nn.Embedding(3, 4), torch.nn.Flatten(), torch.nn.LazyLinear(2))
    inputs = ModelInputs.for_model(model, tokenizer=tokenizer)
    assert inputs.tokenizer is tokenizer
    assert inputs.collate(["soup bread", "bread"])["input_ids"].tolist() == [[1, 2], [2, 0]]
    with pytest.raises(TypeError, match="either tokenizer or collate_fn"):
        ModelInputs.for_model(model, tokenizer=tokenizer, collate_fn=lambda texts: texts)
    labeler = Labeler(model, text_pool(), workdir=tmp_path / "wd", tokenizer=tokenizer)
    assert labeler.tuned_model() is model and finetuner.api.tokenizer_of(model) is tokenizer


def test_a_text_pool_starts_with_diversity_and_2_epochs_unless_given_or_chosen_before(tmp_path):
    """Text pools default to diversity and 2 epochs per fit (benchmarks/results/labeler_text.md), other pools to
    uncertainty and 5; a setting given now, or saved by an earlier run or the page, is never replaced by a default."""
    from docarray import Document, DocumentArray

    from finetuner.labeler import Labeler
    from finetuner.labeler.executors import DEFAULT_SETTINGS, PoolExecutor, pool_defaults
    from finetuner.labeler.store import LabelStore

    tensors = DocumentArray(Document(tensor=np.full(4, i, np.float32)) for i in range(3))
    assert pool_defaults(text_pool()) == {**DEFAULT_SETTINGS, "strategy": "diversity", "epochs": 2}
    assert pool_defaults(tensors) == DEFAULT_SETTINGS == {**DEFAULT_SETTINGS, "strategy": "uncertainty", "epochs": 5}
    assert pool_defaults(DocumentArray([*text_pool()[:2], *tensors[:1]])) == DEFAULT_SETTINGS  # mixed

    def settings(workdir, model, docs, **given):
        labeler = Labeler(model, docs, workdir=workdir, collate_fn=lambda texts: np.zeros((len(texts), 1)), **given)
        if labeler.settings:  # what Labeler.start stores before the Flow starts
            store = LabelStore(labeler.workdir.labels)
            store.save_settings(labeler.settings)
            store.close()
        return PoolExecutor(workdir=str(workdir)).settings(parameters={})["settings"]

    model = torch.nn.Sequential(torch.nn.Embedding(3, 4), torch.nn.Flatten(), torch.nn.LazyLinear(2))
    started = settings(tmp_path / "t", model, text_pool())
    assert (started["strategy"], started["epochs"]) == ("diversity", 2)
    chosen = PoolExecutor(workdir=str(tmp_path / "t"))
    chosen.settings(parameters={"update": {"strategy": "random", "top_k": 4}})  # the page's choice
    assert settings(tmp_path / "t", model, text_pool()) == {**chosen.defaults, "strategy": "random", "top_k": 4}
    given = settings(tmp_path / "g", model, text_pool(), strategy="uncertainty", top_k=5, epochs=7)
    assert (given["strategy"], given["top_k"], given["epochs"]) == ("uncertainty", 5, 7)
    arrays = settings(tmp_path / "a", torch.nn.Linear(4, 2), tensors)
    assert (arrays["strategy"], arrays["epochs"]) == ("uncertainty", 5)


def test_executors_called_without_settings_use_the_pools_settings(tmp_path):
    """/questions without a strategy and /fit without epochs take the pool's settings in force (a text pool's
    defaults, then what was saved), as the page shows them, not the defaults for arrays."""
    import asyncio

    from finetuner.labeler import Labeler
    from finetuner.labeler.executors import (
        SESSIONS,
        IndexExecutor,
        LabelerObjects,
        PoolExecutor,
        TunerExecutor,
    )

    model = torch.nn.Sequential(torch.nn.Embedding(3, 4), torch.nn.Flatten(), torch.nn.Linear(4, 2))
    labeler = Labeler(model, text_pool(), workdir=tmp_path / "wd",
                      collate_fn=lambda texts: torch.tensor([[len(t) % 3] for t in texts]))
    SESSIONS["defaults-test"] = LabelerObjects(labeler.model, labeler.embed_fn, labeler.train_fn, inputs=labeler.inputs)
    try:
        root = str(labeler.workdir.root)
        pool = PoolExecutor(workdir=root)
        index = IndexExecutor(workdir=root, session="defaults-test")
        asked = index.questions(parameters={})
        assert asked["strategy"] == "diversity" and len(asked["questions"]) == 3
        query = asked["questions"][0]
        pool.submit(parameters={"labels": [
            {"query_id": query["query_id"], "match_id": match["id"], "label": 1} for match in query["matches"]
        ]})
        tuner = TunerExecutor(workdir=root, session="defaults-test")
        tuner.workdir.load_pool = None  # the Tuner takes the text defaults from pool.json, never the whole pool
        assert asyncio.run(tuner.fit(docs=pool.session_docs(), parameters={}))["started"]
        while asyncio.run(tuner.fit_status())["running"]:
            time.sleep(0.05)
        state = asyncio.run(tuner.fit_status())
        assert state["error"] is None and state["metrics"]["epochs"] == 2
        pool.settings(parameters={"update": {"strategy": "random", "questions": 2}})  # the page's choice
        assert (index.questions(parameters={})["strategy"], len(index.questions(parameters={})["questions"])) == (
            "random", 2)
    finally:
        SESSIONS.pop("defaults-test", None)


def test_an_image_folder_is_embedded_and_trained_through_the_preprocess_fn(tmp_path):
    """Images read from disk, resized by ImagePreprocess, both for the index and the training batches."""
    from jina.helper import random_port
    from PIL import Image

    from finetuner.labeler import Labeler
    from finetuner.labeler.sources import ImagePreprocess, load_pool

    rng = np.random.default_rng(0)
    for i in range(12):
        (tmp_path / "imgs" / f"c{i % 3}").mkdir(parents=True, exist_ok=True)
        image = rng.integers(0, 60, (20 + i, 30, 3), dtype=np.uint8)
        image[..., i % 3] += 180
        Image.fromarray(image).save(tmp_path / "imgs" / f"c{i % 3}" / f"{i}.png")
    docs = load_pool(tmp_path / "imgs")
    torch.manual_seed(0)
    model = torch.nn.Sequential(
        torch.nn.Conv2d(3, 4, 3, stride=2), torch.nn.ReLU(), torch.nn.AdaptiveAvgPool2d(2), torch.nn.Flatten(),
        torch.nn.Linear(16, 8),
    )
    port = random_port()
    with Labeler(model, docs, workdir=tmp_path / "wd", port=port, token=TOKEN, preprocess_fn=ImagePreprocess((16, 16)),
                 top_k=3, questions=2, epochs=2):
        first = call(port, "GET", "/api/questions?client=i")
        assert {card["kind"] for card in first["cards"].values()} == {"image"}
        assert first["strategy"] == "uncertainty"
        assert all(card["src"].startswith("data:image/") for card in first["cards"].values())
        labels = [
            {"query_id": q["query_id"], "match_id": m["id"],
             "label": 1 if m["id"].split("/")[0] == q["query_id"].split("/")[0] else -1}
            for q in first["questions"] for m in q["matches"]
        ]
        labels[0]["label"], labels[1]["label"] = 1, -1  # at least one of each, whatever the untrained model found
        call(port, "POST", "/api/labels", {"labels": labels})
        fit_to_version(port, 1)
        assert call(port, "GET", "/api/questions?client=i")["model_version"] == 1
