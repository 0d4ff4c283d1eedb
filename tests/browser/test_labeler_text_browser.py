"""A text pool in a real Chromium: ``finetuner label --data texts.txt`` with the pretrained MiniLM, end to end.

Label by mouse and keyboard, read a long text with "more", fit, the next questions come from the new model, Finish; the
saved model's tokenizer is beside it, and the model is exported with it and served by onnxruntime with the
embeddings of the tuned model.
"""

from __future__ import annotations

import json

import numpy as np
import pytest

from tests.browser.test_labeler_browser import (
    current_questions,
    expect_text,
    finish,
    open_page,
    submit_for_questions_of,
)
from tests.finetuner.test_label_command import LabelCommand

pytestmark = pytest.mark.browser

TOPICS = [
    "a bowl of tomato soup with basil", "freshly baked sourdough bread", "grilled salmon with lemon",
    "a chocolate cake for dessert", "spicy noodles with garlic", "a salad of lettuce and cucumber",
    "a telescope pointed at distant galaxies", "the orbit of the moon around the earth",
    "astronauts aboard the space station", "a comet passing near the sun", "the rings of the planet saturn",
    "the striker scored a goal in the final minute", "a tennis match on a grass court",
    "runners crossing the marathon finish line", "a swimmer breaking the world record",
]
TEXTS = [" ".join([f"{text}."] * 12) for text in TOPICS]  # every card long enough to be clamped


def test_label_a_text_pool_fit_and_finish_with_an_exportable_model(browser, minilm_embedding, tmp_path):
    import onnxruntime as ort

    import finetuner
    from finetuner.data import tokenizer_collate
    from finetuner.labeler.text import load_tokenizer
    from finetuner.onnx_meta import EmbeddingModelMeta

    _, saved, tokenizer_folder = minilm_embedding
    data = tmp_path / "texts.txt"
    data.write_text("\n".join(TEXTS) + "\n", encoding="utf-8")
    out = tmp_path / "tuned.onnx"
    command = LabelCommand(
        ["--data", str(data), "--model", str(saved), "--tokenizer", str(tokenizer_folder), "--questions", "2",
         "--top-k", "4", "--epochs", "2", "--save", str(out)],
        tmp_path / "wd",
    )
    try:
        page = open_page(browser, f"{command.url}/?token={command.token}")
        assert page.locator(".card.text-card").count() == 2 * 5
        # the long text: clamped, "more" shows it whole and labels nothing
        page.locator(".question").first.locator(".match").first.click()  # focus question 1, relevant
        page.keyboard.press("1")  # ... and not relevant again: keyboard labelling as before
        assert page.locator(".match[aria-pressed=true]").count() == 0
        assert page.locator(".card .more:visible").count() == 2 * 5
        more = page.locator(".match .more").first
        clamped = page.locator(".match .text").first.evaluate("e => e.clientHeight")
        more.click()  # the page is rendered anew: find the card again
        card = page.locator(".match").first
        assert "expanded" in card.get_attribute("class") and card.locator(".more").text_content() == "less"
        assert card.locator(".text").evaluate("e => e.clientHeight") > clamped
        assert page.locator(".match[aria-pressed=true]").count() == 0
        first_round = current_questions(page)
        page.keyboard.press("1")
        page.keyboard.press("j")
        page.keyboard.press("2")
        page.keyboard.press("Enter")
        expect_text(page, "#stat-labelled", "8")
        expect_text(page, "#stat-positive", "2")
        page.keyboard.press("f")
        expect_text(page, "#stat-model", "v1", timeout=120_000)
        # the next round is asked by model v1
        second_round = current_questions(page)
        page.keyboard.press("a")
        submit_for_questions_of(page, 1, lambda: page.keyboard.press("Enter"))
        expect_text(page, "#stat-labelled", "16", timeout=30_000)
        asked = {q for q, _ in first_round + second_round}
        page.wait_for_function("qs => ![...document.querySelectorAll('.question')].some(b => qs.includes(b.dataset.queryId))",
                               arg=sorted(asked))
        assert not {q for q, _ in current_questions(page)} & asked
        finish(page, command)
    finally:
        command.stop()

    tuned = finetuner.load(out)
    # the tokenizer travelled with --save: `finetuner label --model tuned.onnx` finds it there, and export uses it
    sidecar = load_tokenizer(str(tmp_path / "tuned.tokenizer"))
    collate = tokenizer_collate(sidecar)
    batch = collate(["a rocket on the launch pad", "a plate of pasta"])
    assert batch["input_ids"].tolist() == tokenizer_collate(load_tokenizer(str(tokenizer_folder)))(
        ["a rocket on the launch pad", "a plate of pasta"])["input_ids"].tolist()
    served_path = finetuner.export(tuned, tmp_path / "served.onnx", tokenizer=sidecar)
    assert EmbeddingModelMeta.from_file(served_path).kind == "text"
    session = ort.InferenceSession(str(served_path), providers=["CPUExecutionProvider"])
    feed = {i.name: batch[i.name] for i in session.get_inputs()}
    np.testing.assert_allclose(session.run(None, feed)[0], finetuner.embed(feed, tuned), atol=1e-4)
    untrained = finetuner.embed(feed, finetuner.load(saved))
    assert not np.allclose(untrained, finetuner.embed(feed, tuned), atol=1e-6), "Finish returned the untrained model"
    assert json.loads((tmp_path / "wd" / "checkpoints" / "latest.json").read_text())["version"] >= 1
