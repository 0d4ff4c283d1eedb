"""``finetuner serve``'s flags reach the Executor it builds; wrong ones are refused before any process starts."""

from __future__ import annotations

import pytest
import torch

import finetuner
from finetuner.cli import build_parser, main
from finetuner.cli.serve import flow_from_args
from finetuner.serving.flow import EXECUTOR_NAME


@pytest.fixture(scope="module")
def model_path(tmp_path_factory):
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Linear(16, 32), torch.nn.ReLU(), torch.nn.Linear(32, 8)).eval()
    return finetuner.export(net, tmp_path_factory.mktemp("cli-serve") / "mlp.onnx", input_shape=(16,))


def _executor_settings(argv: list[str]) -> dict:
    flow = flow_from_args(build_parser().parse_args(argv))
    return flow._deployment_nodes[EXECUTOR_NAME].args.uses_with


def test_uri_folder_fetch_network_and_session_choice_reach_the_executor(model_path, tmp_path):
    settings = _executor_settings(
        ["serve", str(model_path), "--uri-folder", str(tmp_path), "--fetch-network", "--session-choice", "auto",
         "--drop-image-content"]
    )
    assert settings["drop_image_content"] is True
    assert settings["uri_folder"] == str(tmp_path.resolve())
    assert settings["fetch_network"] is True
    assert settings["session_choice"] == "auto"


def test_without_the_flags_no_folder_no_network_and_quiet_options(model_path):
    settings = _executor_settings(["serve", str(model_path)])
    assert (settings["uri_folder"], settings["fetch_network"], settings["session_choice"]) == (None, False, "quiet")
    assert settings["drop_image_content"] is False


def test_a_uri_folder_that_is_not_a_folder_is_refused_by_name(model_path, tmp_path, capsys):
    missing = tmp_path / "nowhere"
    assert main(["serve", str(model_path), "--uri-folder", str(missing)]) == 1
    assert f"uri_folder {missing} is not a folder" in capsys.readouterr().err


def test_an_unknown_session_choice_is_refused_with_the_choices(model_path, capsys):
    with pytest.raises(SystemExit):
        main(["serve", str(model_path), "--session-choice", "fastest"])
    assert "choose from 'auto', 'quiet', 'spinning', 'extended'" in capsys.readouterr().err


def test_help_explains_the_serving_flags(capsys):
    with pytest.raises(SystemExit):
        main(["serve", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    for flag in ("--uri-folder DIR", "--fetch-network", "--session-choice", "--drop-image-content"):
        assert flag in text
    assert "time each on a sample batch at start" in text
