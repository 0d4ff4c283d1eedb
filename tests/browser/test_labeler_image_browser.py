"""A folder of JPEGs in a real Chromium: ``finetuner label --data ./folder_of_jpegs --model
torchvision.models:resnet18 --output-dim 64``, end to end.

Label by clicking thumbnails, fit, the next questions come from the new model, Finish; the saved model is exported
and its ONNX gives the tuned model's embeddings of the same preprocessed images.
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

COLOURS = {"red": (200, 30, 30), "green": (30, 170, 40), "blue": (30, 40, 200)}


def write_jpegs(folder, per_colour: int = 4) -> None:
    """``<colour>/<i>.jpg``: noisy photos of one dominant colour each, in nested folders as users keep them."""
    from PIL import Image

    rng = np.random.default_rng(0)
    for colour, rgb in COLOURS.items():
        (folder / colour).mkdir(parents=True)
        for i in range(per_colour):
            pixels = np.clip(rng.normal(rgb, 40, size=(48 + 8 * i, 64, 3)), 0, 255).astype(np.uint8)
            Image.fromarray(pixels).save(folder / colour / f"{i}.jpg", quality=90)


def test_label_an_image_folder_fit_and_finish_with_an_exportable_model(browser, tmp_path):
    torch = pytest.importorskip("torchvision")  # noqa: F841 - the command's model
    import onnxruntime as ort

    import finetuner
    from finetuner.labeler.sources import ImagePreprocess, load_pool

    write_jpegs(tmp_path / "photos")
    out = tmp_path / "tuned.onnx"
    command = LabelCommand(
        ["--data", str(tmp_path / "photos"), "--model", "torchvision.models:resnet18", "--output-dim", "64",
         "--questions", "2", "--top-k", "4", "--epochs", "1", "--save", str(out)],
        tmp_path / "wd",
    )
    try:
        page = open_page(browser, f"{command.url}/?token={command.token}")
        assert page.locator(".match img").count() == 2 * 4  # thumbnails
        first_round = current_questions(page)
        for query_id, matches in first_round:  # relevant: the same colour (folder); the rest irrelevant
            for match in matches:
                if match.split("/")[0] == query_id.split("/")[0]:
                    page.click(f".question[data-query-id='{query_id}'] .match[data-id='{match}']")
        page.click("#submit")
        expect_text(page, "#stat-labelled", "8")
        page.keyboard.press("f")
        expect_text(page, "#stat-model", "v1", timeout=180_000)
        # the next round is asked by model v1
        page.wait_for_function("q => !document.querySelector(`.question[data-query-id='${q}']`)",
                               arg=first_round[0][0])
        second_round = current_questions(page)
        submit_for_questions_of(page, 1, lambda: page.click("#submit"))
        expect_text(page, "#stat-labelled", "16", timeout=30_000)
        assert len({q for q, _ in first_round + second_round}) == 4  # no query asked twice
        finish(page, command)
    finally:
        command.stop()

    tuned = finetuner.load(out)
    docs = load_pool(tmp_path / "photos")
    images = np.stack([ImagePreprocess((224, 224))(doc) for doc in docs[:3]])  # the command's default input
    session = ort.InferenceSession(str(finetuner.export(tuned, tmp_path / "served.onnx")),
                                   providers=["CPUExecutionProvider"])
    (name,) = [i.name for i in session.get_inputs()]
    served = session.run(None, {name: images})[0]
    assert served.shape == (3, 64)
    np.testing.assert_allclose(served, finetuner.embed(images, tuned), atol=1e-4)
    assert json.loads((tmp_path / "wd" / "checkpoints" / "latest.json").read_text())["version"] >= 1
