"""The Labeler with Keras and Paddle models, through its HTTP API on a real Flow: label, fit, save (a file that
``finetuner.load`` reads back), restart on the same workdir (labels and newest weights back); and
``finetuner.fit(..., interactive=True)`` returning the tuned model once the page says stop."""

from __future__ import annotations

import importlib
import json
import threading
import time
import urllib.error
import urllib.request
import warnings

import numpy as np
import pytest

pytest.importorskip("jina")

POOL = 60


def _pool():
    from docarray import Document, DocumentArray
    from sklearn.datasets import load_digits

    digits = load_digits()
    images = digits.data[:POOL].astype(np.float32) / 16
    docs = DocumentArray(Document(id=f"d{i}", tensor=x) for i, x in enumerate(images))
    return docs, {f"d{i}": int(y) for i, y in enumerate(digits.target[:POOL])}


def _model(framework: str):
    import finetuner
    from tailor_ir import imports

    try:  # through tailor_ir.imports: paddle imported after TensorFlow crashes without its DEEPBIND
        {"keras": imports.import_keras, "paddle": imports.import_paddle}[framework]()
    except ImportError as exc:
        pytest.skip(f"{framework} is not installed: {exc}")
    zoo = importlib.import_module(f"models.{framework}_zoo")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return finetuner.tailor.to_embedding(zoo.build("mlp")[0], output_dim=16, input_shape=(64,))


TOKEN = "labeler-frameworks-test-token"


def call(port: int, method: str, path: str, body: object = None) -> tuple[int, dict]:
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(f"http://127.0.0.1:{port}{path}", data=data, method=method)
    request.add_header("Content-Type", "application/json")
    request.add_header("X-Finetuner-Token", TOKEN)
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


def label_round(port: int, truth: dict[str, int]) -> int:
    """Answer one round of questions from the true digit classes; returns how many labels were stored."""
    status, reply = call(port, "GET", "/api/questions?client=test")
    assert status == 200 and reply["questions"], reply
    answers = [
        {"query_id": q["query_id"], "match_id": m["id"], "label": 1 if truth[q["query_id"]] == truth[m["id"]] else -1}
        for q in reply["questions"] for m in q["matches"]
    ]
    status, stored = call(port, "POST", "/api/labels", {"labels": answers})
    assert status == 200, stored
    return stored["stored"]


def fit_and_wait(port: int, fits: int, timeout: float = 60) -> dict:
    status, reply = call(port, "POST", "/api/fit", {})
    assert status == 200 and reply["started"], reply
    deadline = time.time() + timeout
    while True:
        progress = call(port, "GET", "/api/progress")[1]
        if progress["fit"]["fits"] >= fits and progress["index"]["model_version"] >= progress["fit"]["version"]:
            assert progress["fit"]["error"] is None, progress["fit"]["error"]
            return progress
        assert time.time() < deadline, f"the fit did not finish: {progress}"
        time.sleep(0.3)


def embed(model, x):
    import finetuner

    return finetuner.embed(x, model)


@pytest.mark.parametrize("framework", ["keras", "paddle"])
def test_label_fit_save_and_resume_on_the_same_workdir(framework, tmp_path):
    import onnxruntime as ort

    import finetuner
    from finetuner.labeler import Labeler
    from finetuner.labeler.pool import Workdir
    from finetuner.onnx_meta import EmbeddingModelMeta

    docs, truth = _pool()
    x = np.stack([d.tensor for d in docs[:7]]).astype(np.float32)
    model = _model(framework)
    untrained = embed(model, x)
    workdir = tmp_path / "wd"

    with Labeler(model, docs, workdir=workdir, top_k=4, questions=3, epochs=3, token=TOKEN) as lab:
        labelled = label_round(lab.port, truth) + label_round(lab.port, truth)
        progress = fit_and_wait(lab.port, fits=1)
        assert progress["labelled"] == labelled and progress["fit"]["version"] == 1
        status, saved = call(lab.port, "POST", "/api/save", {"export": True})
        assert status == 200 and saved["version"] == 1, saved

    record = Workdir(workdir).latest_checkpoint()
    assert record["version"] == 1 and record["path"].endswith(".npz")
    assert not list((workdir / "checkpoints").glob(".*")), "a temporary checkpoint file was left behind"
    tuned = lab.tuned_model()  # the labeler's model with the newest checkpoint's weights
    assert tuned is model
    expected = embed(tuned, x)
    assert not np.allclose(expected, untrained, atol=1e-4), "the fit did not change the model"
    loaded = finetuner.load(saved["path"])
    assert type(loaded).__module__.split(".")[0] == type(model).__module__.split(".")[0]
    np.testing.assert_allclose(embed(loaded, x), expected, atol=1e-5)
    meta = EmbeddingModelMeta.from_file(saved["export_path"])
    assert (meta.framework, meta.output_dim) == (framework, 16)
    session = ort.InferenceSession(saved["export_path"], providers=["CPUExecutionProvider"])
    np.testing.assert_allclose(session.run(None, {meta.input_names[0]: x})[0], expected, atol=1e-4)

    # a restart: a fresh model object of the same architecture on the same workdir gets every label and v1 back
    fresh = _model(framework)
    with Labeler(fresh, docs, workdir=workdir, token=TOKEN) as lab:
        progress = call(lab.port, "GET", "/api/progress")[1]
        assert progress["labelled"] == labelled
        assert progress["fit"]["version"] == 1 and progress["index"]["model_version"] == 1
        np.testing.assert_allclose(embed(lab.tuned_model(), x), expected, atol=1e-5)
        label_round(lab.port, truth)
        progress = fit_and_wait(lab.port, fits=1)
        assert progress["fit"]["version"] == 2
        status, saved = call(lab.port, "POST", "/api/save")
        assert status == 200 and saved["version"] == 2 and "export_path" not in saved
    files = sorted(p.name for p in (workdir / "checkpoints").iterdir())
    assert files == ["latest.json", "model-2.npz"]
    np.testing.assert_allclose(embed(finetuner.load(saved["path"]), x), embed(lab.tuned_model(), x), atol=1e-5)
    assert not np.allclose(embed(fresh, x), expected, atol=1e-4)


def test_fit_interactive_returns_the_tuned_model_after_stop(tmp_path):
    from jina.helper import random_port

    import finetuner
    from finetuner.labeler.pool import Workdir

    docs, truth = _pool()
    x = np.stack([d.tensor for d in docs[:5]]).astype(np.float32)
    model = _model("keras")
    untrained = embed(model, x)
    port = random_port()
    options = {"workdir": str(tmp_path / "wd"), "port": port, "open_browser": False, "top_k": 4, "token": TOKEN}
    result: dict = {}

    def target() -> None:
        try:
            result["model"] = finetuner.fit(model, docs, epochs=2, interactive=True, labeler_options=options)
        except BaseException as exc:  # noqa: BLE001 - re-raised in the test thread
            result["error"] = exc

    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    deadline = time.time() + 90
    while True:
        try:
            if call(port, "GET", "/api/progress")[0] == 200:
                break
        except OSError:
            pass
        assert thread.is_alive() and time.time() < deadline, result.get("error", "fit() did not serve the Labeler")
        time.sleep(0.3)
    label_round(port, truth)
    fit_and_wait(port, fits=1)
    call(port, "POST", "/api/stop", {})
    thread.join(timeout=60)
    assert not thread.is_alive(), "fit(interactive=True) did not return after /api/stop"
    assert "error" not in result, result["error"]
    tuned = result["model"]
    assert tuned is model
    weights = Workdir(tmp_path / "wd").read_checkpoint()
    from finetuner.labeler.training import get_weights

    current = get_weights(tuned)
    assert list(current) == list(weights)
    for name, value in current.items():
        np.testing.assert_array_equal(value, weights[name])
    assert not np.allclose(embed(tuned, x), untrained, atol=1e-4)


def test_the_model_host_runs_every_model_operation_in_its_own_process(tmp_path):
    """What the Executors do with a hosted (Keras / CUDA) model, here with a torch one and no Flow (saving through
    the host is covered with Keras above)."""
    import multiprocessing as mp

    torch = pytest.importorskip("torch")
    from finetuner.labeler.host import ModelHost, RemoteModel, remote_embed_fn, remote_train_fn
    from finetuner.labeler.training import (
        clone_model,
        default_embed_fn,
        default_train_fn,
        get_weights,
        set_weights,
    )

    docs, _ = _pool()
    x = np.stack([d.tensor for d in docs[:6]]).astype(np.float32)
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(64, 32), torch.nn.ReLU(), torch.nn.Linear(32, 8))
    host = ModelHost(model, default_embed_fn, default_train_fn)
    try:
        tuner, index = host.handle("tuner"), host.handle("index")

        def child(queue) -> None:  # what a forked Executor does, its answers checked in the parent
            from docarray import DocumentArray

            sessions = DocumentArray([docs[0]])
            sessions[0].matches.extend([docs[1], docs[2]])
            sessions[0].matches[0].tags["finetuner_label"] = 1
            sessions[0].matches[1].tags["finetuner_label"] = -1
            before = remote_embed_fn(index, x)
            metrics = remote_train_fn(tuner, sessions, 2)
            set_weights(index, get_weights(tuner))
            spare = clone_model(tuner)
            set_weights(spare, get_weights(tuner))
            try:
                set_weights(index, {"nope": np.zeros(1)})
            except Exception as exc:  # noqa: BLE001
                error = f"{type(exc).__name__}: {exc}"
            queue.put((before, metrics, remote_embed_fn(index, x), remote_embed_fn(spare, x),
                       isinstance(spare, RemoteModel) and spare.role not in ("tuner", "index"), error))

        queue = mp.get_context("fork").Queue()
        # daemon: a child stuck on its way out is killed at the end of the run instead of joined forever
        process = mp.get_context("fork").Process(target=child, args=(queue,), daemon=True)
        process.start()
        try:
            before, metrics, after, from_clone, cloned, error = queue.get(timeout=60)
            process.join(timeout=30)
        finally:
            if process.is_alive():
                process.kill()
    finally:
        host.close()
    assert "loss" in metrics and cloned and "nope" in error
    np.testing.assert_allclose(after, default_embed_fn(model, x), atol=1e-6)  # the host trained the model itself
    assert not np.allclose(before, after, atol=1e-4)
    np.testing.assert_allclose(from_clone, after, atol=1e-6)
