"""The Labeler's HTTP API on a real Flow: bad requests fail clearly and change nothing; static files stay inside ui/."""

from __future__ import annotations

import http.client
import json
import time
import urllib.error
import urllib.request

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("jina")


@pytest.fixture(scope="module")
def labeler(tmp_path_factory):
    from docarray import Document, DocumentArray
    from sklearn.datasets import load_digits

    from finetuner.labeler import Labeler

    images = load_digits().data[:150].astype(np.float32) / 16
    docs = DocumentArray(Document(id=f"d{i}", tensor=x) for i, x in enumerate(images))
    docs.append(Document(id="words", text="a text document"))
    docs[-1].tensor = np.zeros(64, np.float32)
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(64, 32), torch.nn.ReLU(), torch.nn.Linear(32, 16))
    with Labeler(model, docs, workdir=tmp_path_factory.mktemp("wd"), top_k=3, questions=2) as lab:
        yield lab


def call(labeler, method: str, path: str, body: object = None, raw: bytes | None = None) -> tuple[int, dict]:
    data = raw if raw is not None else (json.dumps(body).encode() if body is not None else None)
    request = urllib.request.Request(f"http://127.0.0.1:{labeler.port}{path}", data=data, method=method)
    request.add_header("Content-Type", "application/json")
    request.add_header("X-Finetuner-Token", labeler.token)
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


def counts(labeler) -> dict:
    status, progress = call(labeler, "GET", "/api/progress")
    assert status == 200
    return {k: progress[k] for k in ("labelled", "positive", "negative", "rounds")}


@pytest.mark.parametrize(
    ("labels", "message"),
    [
        ([{"query_id": "d1", "match_id": "nope", "label": 1}], "unknown document id 'nope'"),
        ([{"query_id": "ghost", "match_id": "d2", "label": -1}], "unknown document id 'ghost'"),
        ([{"query_id": "d1", "match_id": "d2", "label": 2}], "label must be +1 (relevant) or -1"),
        ([{"query_id": "d1", "match_id": "d2", "label": "maybe"}], "label must be +1"),
        ([{"query_id": "d1", "match_id": "d2"}], "lacks label"),
        ([{"query_id": "d1", "match_id": "d1", "label": 1}], "against itself"),
        ("d1,d2,1", "must be a list"),
        ([], "no labels given"),
        # one good label next to a bad one: the whole submit is refused, the good one is not stored either
        ([{"query_id": "d1", "match_id": "d2", "label": 1}, {"query_id": "d1", "match_id": "x", "label": 1}],
         "unknown document id 'x'"),
    ],
)
def test_bad_labels_get_a_clear_error_and_change_nothing(labeler, labels, message):
    before = counts(labeler)
    status, reply = call(labeler, "POST", "/api/labels", {"labels": labels})
    assert status == 400
    assert message in reply["error"]
    assert counts(labeler) == before


def test_a_body_that_is_not_json_is_refused(labeler):
    before = counts(labeler)
    status, reply = call(labeler, "POST", "/api/labels", raw=b"{not json")
    assert (status, reply["error"]) == (400, "the request body must be JSON")
    assert counts(labeler) == before


def test_good_labels_are_stored_and_resubmitting_updates_instead_of_duplicating(labeler):
    before = counts(labeler)
    pair = [{"query_id": "d10", "match_id": "d11", "label": 1}, {"query_id": "d10", "match_id": "d12", "label": -1}]
    assert call(labeler, "POST", "/api/labels", {"labels": pair})[0] == 200
    pair[1]["label"] = 1
    assert call(labeler, "POST", "/api/labels", {"labels": pair})[0] == 200
    after = counts(labeler)
    assert after["labelled"] == before["labelled"] + 2
    assert after["positive"] == before["positive"] + 2
    assert after["rounds"] == before["rounds"] + 2


def test_questions_come_with_cards_for_tensors_and_text(labeler):
    status, reply = call(labeler, "GET", "/api/questions?n=2&k=3&strategy=diversity&client=t")
    assert status == 200 and len(reply["questions"]) == 2
    for question in reply["questions"]:
        assert len(question["matches"]) == 3
        for doc_id in [question["query_id"], *(m["id"] for m in question["matches"])]:
            assert reply["cards"][doc_id]["kind"] in ("image", "text")
    status, reply = call(labeler, "GET", "/api/questions?pin=words&k=2")
    assert status == 200 and [q["query_id"] for q in reply["questions"]] == ["words"]
    assert reply["cards"]["words"] == {"id": "words", "kind": "image", "src": reply["cards"]["words"]["src"]}


@pytest.mark.parametrize(
    ("query", "message"),
    [("pin=ghost", "unknown document id 'ghost'"), ("strategy=smart", "strategy must be one of"), ("k=0", "top_k")],
)
def test_bad_question_requests_are_refused(labeler, query, message):
    status, reply = call(labeler, "GET", f"/api/questions?{query}")
    assert status == 400 and message in reply["error"]


def test_bad_settings_are_refused_and_good_ones_persist(labeler):
    status, reply = call(labeler, "POST", "/api/settings", {"epochs": 0})
    assert status == 400 and "epochs must be between 1 and 100" in reply["error"]
    status, reply = call(labeler, "POST", "/api/settings", {"colour": "red"})
    assert status == 400 and "unknown setting 'colour'" in reply["error"]
    assert call(labeler, "POST", "/api/settings", {"strategy": "random"})[1]["settings"]["strategy"] == "random"
    assert call(labeler, "GET", "/api/settings")[1]["settings"]["strategy"] == "random"


@pytest.mark.parametrize(
    "path",
    ["/ui/../gateway.py", "/ui/..%2Fgateway.py", "/ui/%2e%2e/store.py", "/ui/..%2f..%2f..%2fsetup.cfg",
     "/ui//etc/passwd", "/ui/%2Fetc%2Fpasswd"],
)
def test_static_files_are_served_only_from_the_ui_folder(labeler, path):
    connection = http.client.HTTPConnection("127.0.0.1", labeler.port, timeout=10)
    connection.request("GET", path, headers={"X-Finetuner-Token": labeler.token})  # sent as is: no normalisation
    response = connection.getresponse()
    body = response.read()
    assert response.status in (400, 404)
    assert b"LabelStore" not in body and b"root:" not in body and b"[metadata]" not in body


def test_the_page_and_its_assets_are_served(labeler):
    for path, marker in [("/ui/", b"Finetuner Labeler"), ("/ui/app.js", b"submitRound"), ("/ui/style.css", b".card")]:
        request = urllib.request.Request(f"http://127.0.0.1:{labeler.port}{path}")
        request.add_header("X-Finetuner-Token", labeler.token)
        with urllib.request.urlopen(request, timeout=10) as response:
            assert marker in response.read()


def test_exported_labels_are_session_data_that_fit_takes(labeler):
    from docarray import DocumentArray

    status, reply = call(labeler, "POST", "/api/export")
    assert status == 200 and reply["labels"] >= 2
    sessions = DocumentArray.from_bytes(open(reply["path"], "rb").read(), protocol="protobuf", compress="zlib")
    assert len(sessions) == reply["queries"]
    for query in sessions:
        assert query.tensor is not None and len(query.matches)
        assert {m.tags["finetuner_label"] for m in query.matches} <= {1, -1}
        assert all(m.tensor is not None for m in query.matches)
    from finetuner.tuner import tuner_class

    state = tuner_class("torch")(torch.nn.Linear(64, 8)).fit(sessions, epochs=1, batch_size=8)
    assert state.global_step >= 1


def test_run_blocks_until_stop_and_returns_the_model_with_the_newest_fitted_weights(tmp_path):
    """What ``finetuner.fit(..., interactive=True)`` relies on: run() returns the tuned model object."""
    import threading
    import types

    from docarray import Document, DocumentArray
    from jina.helper import random_port
    from sklearn.datasets import load_digits

    from finetuner.labeler import run
    from finetuner.labeler.pool import Workdir

    images = load_digits().data[:40].astype(np.float32) / 16
    docs = DocumentArray(Document(id=f"r{i}", tensor=x) for i, x in enumerate(images))
    torch.manual_seed(0)
    model = torch.nn.Linear(64, 8)
    initial = {k: v.clone() for k, v in model.state_dict().items()}
    lab = types.SimpleNamespace(port=random_port(), token="a-token-the-test-chose")
    result: dict = {}
    thread = threading.Thread(
        target=lambda: result.update(model=run(model, docs, workdir=tmp_path, port=lab.port, top_k=3, epochs=2,
                                         token=lab.token)),
        daemon=True,
    )
    thread.start()
    deadline = time.time() + 60
    while True:
        try:
            if call(lab, "GET", "/api/progress")[0] == 200:
                break
        except OSError:
            pass
        assert thread.is_alive() and time.time() < deadline, "run() did not serve the Labeler"
        time.sleep(0.3)
    _, reply = call(lab, "GET", "/api/questions?client=run")
    answers = [
        {"query_id": q["query_id"], "match_id": m["id"], "label": 1 if j % 2 == 0 else -1}
        for q in reply["questions"] for j, m in enumerate(q["matches"])
    ]
    assert call(lab, "POST", "/api/labels", {"labels": answers})[0] == 200
    status, fit = call(lab, "POST", "/api/fit", {})
    assert status == 200 and fit["started"], fit
    while call(lab, "GET", "/api/progress")[1]["fit"]["fits"] < 1:
        assert time.time() < deadline + 60, "the fit did not finish"
        time.sleep(0.3)
    assert call(lab, "GET", "/api/progress")[1]["fit"]["error"] is None
    call(lab, "POST", "/api/stop", {})
    thread.join(timeout=60)
    assert not thread.is_alive(), "run() did not return after /api/stop"
    assert result["model"] is model
    record = Workdir(tmp_path).latest_checkpoint()
    assert record is not None and record["version"] >= 1
    assert record["path"] == f"model-{record['version']}.npz"
    saved = Workdir(tmp_path).read_checkpoint(record)
    assert any(not torch.equal(initial[k], v) for k, v in model.state_dict().items())
    assert list(saved) == list(model.state_dict())
    for key, value in model.state_dict().items():
        np.testing.assert_array_equal(value.numpy(), saved[key])
