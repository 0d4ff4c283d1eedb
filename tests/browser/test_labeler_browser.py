"""The Labeler in a real Chromium: label by mouse and keyboard, fit, save, survive a kill, two tabs at once."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from tests.processes import free_port

ROOT = Path(__file__).resolve().parents[2]

pytestmark = [pytest.mark.browser]  # no skip: a machine without Chromium fails these tests, as .ci/run says


class LabelerProcess:
    """``finetuner label`` on sklearn digits in its own process group, so the whole group can be killed."""

    def __init__(self, workdir: Path, port: int) -> None:
        self.url = f"http://127.0.0.1:{port}"
        self.token = ""
        self.log = open(workdir.parent / f"labeler-{port}-{time.time_ns()}.log", "wb")  # noqa: SIM115
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "finetuner", "label", "--workdir", str(workdir), "--port", str(port),
             "--limit", "240", "--questions", "2", "--top-k", "4", "--epochs", "3"],
            cwd=ROOT, stdout=self.log, stderr=subprocess.STDOUT, start_new_session=True,
        )
        deadline = time.time() + 90
        while time.time() < deadline:
            output = Path(self.log.name).read_text(errors="replace")
            assert self.proc.poll() is None, output[-3000:]
            printed = re.search(r"Labeler: (http://\S+)/\?token=(\S+)", output)
            if printed:  # the address with the token, as the user sees it
                assert printed.group(1) == self.url, output[-3000:]
                self.token = printed.group(2)
                self.get("/api/progress")
                return
            time.sleep(0.3)
        self.kill()
        raise AssertionError("the Labeler did not come up in 90 s")

    @property
    def page_url(self) -> str:
        return f"{self.url}/?token={self.token}"

    def get(self, path: str) -> dict:
        request = urllib.request.Request(self.url + path, headers={"X-Finetuner-Token": self.token})
        with urllib.request.urlopen(request, timeout=10) as response:
            return json.loads(response.read())

    def kill(self) -> None:
        """SIGKILL the Labeler's process group: nothing gets a chance to flush or clean up."""
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        self.proc.wait(timeout=30)
        self.log.close()


def current_questions(page) -> list[tuple[str, list[str]]]:
    """(query id, [match ids]) of every question on the page."""
    return page.eval_on_selector_all(
        ".question",
        "blocks => blocks.map(b => [b.dataset.queryId, [...b.querySelectorAll('.match')].map(m => m.dataset.id)])",
    )


def open_page(browser, url: str):
    """Open the URL the command printed (with the token); the Labeler sets its cookie and shows /ui/."""
    page = browser.new_context().new_page()
    page.goto(url)
    assert page.url.endswith("/ui/"), page.url
    page.wait_for_selector("body[data-ready=true]")
    page.wait_for_selector(".question .match")
    return page


def submit_for_questions_of(page, version: int, submit) -> None:
    """``submit()`` the round: the next questions it brings are asked by model ``version``."""
    with page.expect_response(lambda r: "/api/questions" in r.url, timeout=60_000) as answer:
        submit()
    assert answer.value.json()["model_version"] == version


def finish(page, command, timeout: float = 180) -> None:
    """Press Finish: the command (a ``LabelCommand``) exits with status 0."""
    page.click("#finish")
    assert command.proc.wait(timeout=timeout) == 0, command.output()[-3000:]
    page.close()


def expect_text(page, selector: str, text: str, timeout: float = 30_000) -> None:
    page.wait_for_function(
        "([s, t]) => document.querySelector(s).textContent.trim() === t", arg=[selector, text], timeout=timeout
    )


def test_label_fit_save_then_kill_and_resume_with_every_label(browser, tmp_path):
    workdir = tmp_path / "wd"
    labeler = LabelerProcess(workdir, free_port())
    expected: dict[tuple[str, str], int] = {}
    try:
        page = open_page(browser, labeler.page_url)
        # round 1 by clicking: the first match of each question is relevant, the others irrelevant
        round1 = current_questions(page)
        assert len(round1) == 2 and all(len(matches) == 4 for _, matches in round1)
        for query_id, matches in round1:
            page.click(f".question[data-query-id='{query_id}'] .match[data-id='{matches[0]}']")
            for i, match in enumerate(matches):
                expected[(query_id, match)] = 1 if i == 0 else -1
        assert page.locator(".match[aria-pressed=true]").count() == 2
        page.click("#submit")
        expect_text(page, "#stat-labelled", "8")
        expect_text(page, "#stat-rounds", "1")
        # round 2 by keyboard: matches 1 and 2 of question 1, match 3 of question 2, Enter
        page.wait_for_function("q => !document.querySelector(`.question[data-query-id='${q}']`)", arg=round1[0][0])
        round2 = current_questions(page)
        assert not {q for q, _ in round2} & {q for q, _ in round1}, "a labelled query was asked again"
        page.keyboard.press("1")
        page.keyboard.press("2")
        page.keyboard.press("j")
        page.keyboard.press("3")
        for qi, (query_id, matches) in enumerate(round2):
            for i, match in enumerate(matches):
                expected[(query_id, match)] = 1 if (qi == 0 and i < 2) or (qi == 1 and i == 2) else -1
        assert page.locator(".match[aria-pressed=true]").count() == 3
        page.keyboard.press("Enter")
        expect_text(page, "#stat-labelled", "16")
        expect_text(page, "#stat-rounds", "2")
        expect_text(page, "#stat-positive", "5")
        expect_text(page, "#stat-negative", "11")
        # fit in the background, then the pool is re-embedded with model v1
        page.keyboard.press("f")
        expect_text(page, "#stat-model", "v1", timeout=60_000)
        page.wait_for_function("document.querySelector('#fit-status').textContent.startsWith('done')")
        assert page.text_content("#stat-metric") != "–"
        page.click("#save")
        page.wait_for_function("document.querySelector('#message').textContent.includes('saved to')")
        assert (workdir / "exports" / "model.onnx").stat().st_size > 0
        # pin mode: the same query comes back with its next, still unlabelled matches
        pinned = current_questions(page)[0][0]
        page.click(f".question[data-query-id='{pinned}'] .pin")
        page.wait_for_function("q => document.querySelectorAll('.question').length === 1", arg=pinned)
        assert current_questions(page)[0][0] == pinned
        assert page.is_visible("#pin-status")
        page.close()
    finally:
        labeler.kill()

    labeler = LabelerProcess(workdir, free_port())
    try:
        exported = labeler.get("/api/export/labels.json")["labels"]
        assert {(r["query_id"], r["match_id"]): r["label"] for r in exported} == expected
        page = open_page(browser, labeler.page_url)
        expect_text(page, "#stat-labelled", "16")
        expect_text(page, "#stat-model", "v1")  # the newest model is back too
        asked = {q for q, _ in expected}
        assert not {q for q, _ in current_questions(page)} & asked
        page.close()
    finally:
        labeler.kill()


def test_two_tabs_labelling_at_once_lose_no_label(browser, tmp_path):
    labeler = LabelerProcess(tmp_path / "wd", free_port())
    try:
        tabs = [open_page(browser, labeler.page_url) for _ in range(2)]
        asked = [current_questions(tab) for tab in tabs]
        assert not {q for q, _ in asked[0]} & {q for q, _ in asked[1]}, "two tabs got the same query"
        tabs[0].keyboard.press("a")  # tab 0: all matches of its first question relevant
        tabs[1].keyboard.press("2")
        for tab in tabs:
            tab.evaluate("document.querySelector('#submit').click()")  # both submits in flight together
        for tab, questions in zip(tabs, asked):  # saved: the next round replaced the tab's questions
            tab.wait_for_function("q => !document.querySelector(`.question[data-query-id='${q}']`)",
                                  arg=questions[0][0])
        labels = {(r["query_id"], r["match_id"]): r["label"] for r in labeler.get("/api/export/labels.json")["labels"]}
        expected_pairs = {(q, m) for questions in asked for q, matches in questions for m in matches}
        assert set(labels) == expected_pairs
        assert sum(v > 0 for v in labels.values()) == 4 + 1
        assert labeler.get("/api/progress")["rounds"] == 2
    finally:
        labeler.kill()
