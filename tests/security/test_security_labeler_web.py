"""The Labeler answers only its own page: token, Host and Origin checks, JSON only, size limits, no raw Jina routes.

Each request below is what a hostile web page (cross-site ``text/plain`` POSTs), a DNS-rebinding page
(``Host: evil.example``) or a careless client (huge bodies) can send to ``127.0.0.1:PORT``; on a real Flow.
"""

from __future__ import annotations

import http.client
import json

import numpy as np
import pytest

TOKEN = "security-test-token"


@pytest.fixture(scope="module")
def labeler(tmp_path_factory):
    import torch
    from docarray import Document, DocumentArray

    from finetuner.labeler import Labeler

    rng = np.random.default_rng(0)
    docs = DocumentArray(Document(id=f"d{i}", tensor=rng.random(16).astype(np.float32)) for i in range(40))
    torch.manual_seed(0)
    with Labeler(torch.nn.Linear(16, 4), docs, workdir=tmp_path_factory.mktemp("wd"), token=TOKEN) as lab:
        yield lab


def request(labeler, method: str, path: str, body: bytes | None = None, **headers: str):
    """(status, headers, body) of a raw request; ``headers`` use ``_`` for ``-``; nothing is added."""
    connection = http.client.HTTPConnection("127.0.0.1", labeler.port, timeout=30)
    connection.putrequest(method, path, skip_host=True, skip_accept_encoding=True)
    headers.setdefault("Host", f"127.0.0.1:{labeler.port}")
    if body is not None:
        headers.setdefault("Content_Length", str(len(body)))
    for name, value in headers.items():
        connection.putheader(name.replace("_", "-"), value)
    connection.endheaders()
    try:
        if body is not None:
            connection.send(body)
        response = connection.getresponse()
        return response.status, dict(response.getheaders()), response.read()
    finally:
        connection.close()


def stored_labels(labeler) -> int:
    status, _, body = request(labeler, "GET", "/api/progress", X_Finetuner_Token=TOKEN)
    assert status == 200
    return json.loads(body)["labelled"]


def test_the_token_opens_the_page_once_then_the_cookie_carries_it(labeler):
    assert labeler.url.endswith(f"/?token={TOKEN}")
    status, headers, _ = request(labeler, "GET", f"/?token={TOKEN}")
    assert status in (302, 307) and headers["location"] == "/ui/"
    cookie = headers["set-cookie"]
    assert "HttpOnly" in cookie and "SameSite=strict" in cookie.replace("Strict", "strict")
    status, _, body = request(labeler, "GET", "/api/progress", Cookie=cookie.split(";")[0])
    assert status == 200 and "labelled" in json.loads(body)


@pytest.mark.parametrize("path", ["/api/progress", "/api/export/labels.json", "/ui/", "/ui/app.js"])
@pytest.mark.parametrize("token", [None, "wrong-token"])
def test_requests_without_the_token_are_refused(labeler, path, token):
    headers = {} if token is None else {"X_Finetuner_Token": token}
    status, _, body = request(labeler, "GET", path, **headers)
    assert status == 403 and b"token" in body


def test_the_root_page_without_a_token_only_says_where_to_look(labeler):
    status, _, body = request(labeler, "GET", "/")  # Jina's readiness probe needs this 200
    assert status == 200 and b"?token=" in body and TOKEN.encode() not in body


@pytest.mark.parametrize("path", ["/api/stop", "/api/fit", "/api/labels"])
def test_a_cross_origin_text_plain_post_is_refused(labeler, path):
    before = stored_labels(labeler)
    body = json.dumps({"labels": [{"query_id": "d1", "match_id": "d2", "label": 1}]}).encode()
    status, _, _ = request(labeler, "POST", path, body, Content_Type="text/plain", Origin="http://evil.example")
    assert status == 403
    # even with the token (which such a page cannot know) text/plain is not accepted as JSON
    status, _, reply = request(labeler, "POST", path, body, Content_Type="text/plain", X_Finetuner_Token=TOKEN)
    assert status == 415 and b"application/json" in reply
    assert stored_labels(labeler) == before
    assert not labeler.workdir.stop_request.exists()


def test_a_foreign_origin_is_refused_even_with_the_token(labeler):
    status, _, _ = request(
        labeler, "POST", "/api/labels", b"{}", Content_Type="application/json", Origin="http://evil.example",
        X_Finetuner_Token=TOKEN,
    )
    assert status == 403


def test_a_dns_rebinding_host_is_refused(labeler):
    for host in ("evil.example", f"evil.example:{labeler.port}"):
        status, _, _ = request(labeler, "GET", "/api/export/labels.json", Host=host, X_Finetuner_Token=TOKEN)
        assert status == 403


@pytest.mark.parametrize("path", ["/post", "/dry_run", "/status", "/docs", "/openapi.json", "/fit"])
def test_jina_raw_endpoints_are_closed(labeler, path):
    body = json.dumps({"execEndpoint": "/fit", "data": [{"id": "x", "tensor": [0.0] * 16}]}).encode()
    status, _, _ = request(labeler, "POST", path, body, Content_Type="application/json", X_Finetuner_Token=TOKEN)
    assert status == 404
    status, _, _ = request(labeler, "GET", path, X_Finetuner_Token=TOKEN)
    assert status == 404


def test_an_oversized_body_gets_413_and_stores_nothing(labeler):
    before = stored_labels(labeler)
    label = {"query_id": "d1", "match_id": "d2", "label": 1}
    body = json.dumps({"labels": [label] * 30_000}).encode()  # about 1.5 MB
    assert len(body) > 1 << 20
    try:
        status, _, _ = request(labeler, "POST", "/api/labels", body, Content_Type="application/json",
                               X_Finetuner_Token=TOKEN)
    except (BrokenPipeError, ConnectionResetError):  # refused before the body was read
        status = 413
    assert status == 413
    status, _, _ = request(labeler, "POST", "/api/labels", b"{}", Content_Type="application/json",
                           X_Finetuner_Token=TOKEN, Content_Length=str(50 << 20))
    assert status == 413
    assert stored_labels(labeler) == before


def test_more_labels_than_a_round_can_hold_get_413(labeler):
    before = stored_labels(labeler)
    labels = [{"query_id": f"d{i % 40}", "match_id": f"d{(i + 1) % 40}", "label": 1} for i in range(1001)]
    status, _, reply = request(labeler, "POST", "/api/labels", json.dumps({"labels": labels}).encode(),
                               Content_Type="application/json", X_Finetuner_Token=TOKEN)
    assert status == 413 and b"at most 1000" in reply
    assert stored_labels(labeler) == before


def test_the_page_s_own_requests_pass(labeler):
    """What the browser sends for the page: same Origin, JSON, the cookie."""
    status, headers, _ = request(labeler, "GET", f"/?token={TOKEN}")
    cookie = headers["set-cookie"].split(";")[0]
    body = json.dumps({"labels": [{"query_id": "d3", "match_id": "d4", "label": -1}], "client": "page"}).encode()
    status, _, reply = request(
        labeler, "POST", "/api/labels", body, Content_Type="application/json", Cookie=cookie,
        Origin=f"http://127.0.0.1:{labeler.port}", Sec_Fetch_Site="same-origin",
    )
    assert status == 200, reply
