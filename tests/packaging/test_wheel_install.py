"""An installed finetuner (a wheel, not the checkout) runs ``finetuner demo``, ``finetuner label --help`` and
the README's ``finetuner label --data ./folder_of_jpegs --model torchvision.models:resnet18 --output-dim 64``
(started, asked for questions with its token, stopped; labelling it is tests/browser/test_labeler_image_browser.py).

The fresh venv reaches the frameworks of the running interpreter's environment through a plain path entry
(no reinstall of several GB), but not its editable finetuner, nor the repository's ``models/`` zoo: the
``finetuner`` package imported there must be the wheel's.
"""

from __future__ import annotations

import os
import subprocess
import sys
import sysconfig
import venv
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


ENV = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME")}


def run(args: list[str], cwd: Path, timeout: float = 600) -> subprocess.CompletedProcess:
    result = subprocess.run(args, cwd=cwd, env=ENV, capture_output=True, text=True, timeout=timeout)
    assert result.returncode == 0, f"{args}\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
    return result


def test_a_wheel_installed_in_a_fresh_venv_runs_the_demo_and_the_labeler_help(tmp_path):
    wheels = tmp_path / "wheels"
    run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", str(wheels),
         str(ROOT)], cwd=tmp_path)
    (wheel,) = wheels.glob("finetuner-*.whl")
    with zipfile.ZipFile(wheel) as archive:
        names = set(archive.namelist())
    assert {"finetuner/labeler/ui/app.js", "finetuner/labeler/ui/index.html", "finetuner/demo_model.py"} <= names
    assert not any(name.startswith("models/") for name in names)
    env_dir = tmp_path / "venv"
    venv.EnvBuilder(with_pip=False).create(env_dir)
    python = env_dir / "bin" / "python"
    site = Path(run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                    cwd=tmp_path).stdout.strip())
    # the frameworks, as a plain path: the editable install's .pth hook there is not run, so no checkout leaks in
    (site / "frameworks.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    run([sys.executable, "-m", "pip", "--python", str(python), "install", "--no-deps", "--no-index", "-q",
         str(wheel)], cwd=tmp_path)

    where = run([str(python), "-c", "import finetuner, importlib.util as u; print(finetuner.__file__); "
                 "print(u.find_spec('models'))"], cwd=tmp_path).stdout.split()
    assert Path(where[0]).is_relative_to(env_dir), f"finetuner came from {where[0]}, not the wheel"
    assert where[1] == "None", "the repository's models/ zoo is importable: the test would prove nothing"

    help_text = run([str(env_dir / "bin" / "finetuner"), "label", "--help"], cwd=tmp_path).stdout
    assert "--trust-pickle" in help_text and "--data" in help_text and "Hugging Face model's folder" in help_text
    demo = run([str(python), "-m", "finetuner", "demo", "--epochs", "3", "--no-progress", "--out",
                str(tmp_path / "demo")], cwd=tmp_path)
    assert "the 5 nearest digits" in demo.stdout and (tmp_path / "demo" / "digits-embedding.onnx").is_file()

    from tests.browser.test_labeler_image_browser import write_jpegs
    from tests.finetuner.test_label_command import LabelCommand

    write_jpegs(tmp_path / "folder_of_jpegs", per_colour=2)
    command = LabelCommand(
        ["--data", "./folder_of_jpegs", "--model", "torchvision.models:resnet18", "--output-dim", "64",
         "--questions", "2", "--top-k", "3"],
        tmp_path / "wd", python=python, cwd=tmp_path, env=ENV,
    )
    try:
        asked = command.call("GET", "/api/questions?client=t")
        assert len(asked["questions"]) == 2 and {c["kind"] for c in asked["cards"].values()} == {"image"}
        assert command.finish() == 0, command.output()[-3000:]
    finally:
        command.stop()
