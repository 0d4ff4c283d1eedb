"""A SIGKILLed ``finetuner label`` leaves no process and no bound port behind; a taken port names its holder."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.processes import descendants, free_port, port_bound

ROOT = Path(__file__).resolve().parents[2]


def alive(pid: int) -> bool:
    try:
        state = (Path("/proc") / str(pid) / "stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def cmdline(pid: int) -> str:
    try:
        return (Path("/proc") / str(pid) / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return "?"


def start_labeler(tmp_path: Path, port: int) -> tuple[subprocess.Popen, Path]:
    log = tmp_path / f"label-{port}-{time.time_ns()}.log"
    proc = subprocess.Popen(
        [sys.executable, "-m", "finetuner", "label", "--workdir", str(tmp_path / f"wd-{port}"), "--port", str(port),
         "--limit", "40"],
        cwd=ROOT, stdout=log.open("wb"), stderr=subprocess.STDOUT, start_new_session=True,
    )
    return proc, log


def wait_until_served(proc: subprocess.Popen, log: Path, timeout: float = 120) -> None:
    deadline = time.time() + timeout
    while not re.search(r"Labeler: http://\S+/\?token=", log.read_text(errors="replace")):
        assert proc.poll() is None and time.time() < deadline, log.read_text(errors="replace")[-3000:]
        time.sleep(0.3)


@pytest.fixture
def labeler(tmp_path):
    port = free_port()
    proc, log = start_labeler(tmp_path, port)
    try:
        wait_until_served(proc, log)
        yield proc, port, log
    finally:
        try:
            os.killpg(proc.pid, signal.SIGKILL)  # the test's own clean-up of whatever is left
        except ProcessLookupError:
            pass
        proc.wait(timeout=30)


def test_a_sigkilled_labeler_leaves_no_process_and_no_bound_port(labeler):
    proc, port, _ = labeler
    flow = descendants(proc.pid)
    assert len(flow) >= 4, "expected the gateway and three Executors as child processes"
    assert port_bound(port)
    os.kill(proc.pid, signal.SIGKILL)  # the main process only, as a crash or the OOM killer would
    proc.wait(timeout=10)
    deadline = time.time() + 5
    while (any(alive(pid) for pid in flow) or port_bound(port)) and time.time() < deadline:
        time.sleep(0.1)
    left = {pid: cmdline(pid) for pid in flow if alive(pid)}
    assert not left, f"processes of the killed Labeler are still running: {left}"
    assert not port_bound(port), f"port {port} is still bound after the Labeler was killed"


def test_a_restart_on_a_taken_port_names_the_process_holding_it(labeler, tmp_path):
    proc, port, _ = labeler
    second = subprocess.run(
        [sys.executable, "-m", "finetuner", "label", "--workdir", str(tmp_path / "other"), "--port", str(port),
         "--limit", "40"],
        cwd=ROOT, capture_output=True, text=True, timeout=120,
    )
    assert second.returncode == 1
    assert f"port {port}" in second.stderr and "already in use by pid" in second.stderr
    holder = int(re.search(r"by pid (\d+)", second.stderr).group(1))
    assert holder in {proc.pid, *descendants(proc.pid)}
    assert "Traceback" not in second.stderr
