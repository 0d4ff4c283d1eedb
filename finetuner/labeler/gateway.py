"""The Labeler's gateway: Jina's HTTP gateway plus the JSON API under ``/api`` and the web UI under ``/ui``.

One port serves the page and the API; Jina's own ``/post`` and its other raw routes are closed there, and every
request passes :class:`~finetuner.labeler.guard.Guard` (this run's token, Host and Origin allow-lists, JSON
bodies within a size limit). The API calls the Executors through the gateway's streamer and turns an Executor error into an HTTP error with a JSON ``{"error": ...}`` body (Jina's own
``/post`` would answer HTTP 200 with ``header.status.code=1``), so the page can show what went wrong.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

from fastapi import Request
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from jina import Document, DocumentArray
from jina.serve.runtimes.gateway.http import HTTPGateway

from finetuner.labeler.executors import LIMITS
from finetuner.labeler.guard import Guard
from finetuner.labeler.lifetime import die_with_parent

UI_DIR = Path(__file__).resolve().parent / "ui"
CLIENT_ERRORS = {"LabelError", "ValueError", "KeyError", "TypeError"}
MAX_LABELS_PER_ROUND = LIMITS["questions"][1] * LIMITS["top_k"][1]
NO_TOKEN_PAGE = (
    "<!doctype html><title>Finetuner Labeler</title><p>This is a Finetuner Labeler. Open the address with "
    "<code>?token=...</code> that the <code>finetuner label</code> command (or <code>finetuner.fit(..., "
    "interactive=True)</code>) printed.</p>"
)


class ApiError(Exception):
    """An API call failed; ``status`` is the HTTP status to answer with."""

    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.status = status


def _int_values(value: Any) -> Any:
    """Protobuf Structs turn ints into floats; turn whole floats back into ints, recursively."""
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, dict):
        return {k: _int_values(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_int_values(v) for v in value]
    return value


class LabelerGateway(HTTPGateway):
    """HTTP gateway with the Labeler's routes. ``workdir`` is where the stop request is written; ``token``,
    ``bind_host`` and ``public_port`` configure the :class:`~finetuner.labeler.guard.Guard`; the process ends
    when the Labeler's process ``labeler_pid`` dies."""

    def __init__(
        self, workdir: str = "", token: str = "", bind_host: str = "127.0.0.1", public_port: int = 0,
        labeler_pid: int = 0, **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        if labeler_pid:
            die_with_parent(labeler_pid)
        if not token:
            raise ValueError("the Labeler's gateway needs a token")
        self.workdir = workdir
        self.guard = Guard(token=token, host=bind_host, port=int(public_port))

    async def call(
        self, executor: str, endpoint: str, parameters: dict | None = None, docs: DocumentArray | None = None
    ) -> tuple[dict, DocumentArray]:
        """Send one request to ``executor``'s ``endpoint``; return (its result dict, the response docs)."""
        parameters = dict(parameters or {})
        if docs is None or not len(docs):  # a request needs a document to travel at all
            docs = DocumentArray([Document(id="_")])
        async for response, error in self.streamer.stream(
            docs,
            exec_endpoint=endpoint,
            target_executor=f"^{executor}$",
            parameters=parameters,
            return_results=True,
            request_size=len(docs),
        ):
            if error is not None:
                message = error.args[0] if error.args else error.name
                raise ApiError(message, 400 if error.name in CLIENT_ERRORS else 500)
            results = response.parameters.get("__results__", {})
            result = next((v for k, v in results.items() if k.startswith(f"{executor}/")), {})
            return _int_values(dict(result)), response.docs
        raise ApiError(f"no answer from {executor}{endpoint}", 502)

    @property
    def app(self) -> Any:
        """Jina's FastAPI app with ``/api/*``, ``/ui`` (static files from the package's ui folder) and ``/``."""
        app = super().app

        @app.exception_handler(ApiError)
        async def api_error(request: Request, exc: ApiError) -> JSONResponse:
            return JSONResponse({"error": str(exc)}, status_code=exc.status)

        async def body(request: Request) -> dict:
            try:
                data = await request.json()
            except (json.JSONDecodeError, UnicodeDecodeError):
                raise ApiError("the request body must be JSON") from None
            if not isinstance(data, dict):
                raise ApiError("the request body must be a JSON object")
            return data

        @app.middleware("http")
        async def guard_requests(request: Request, call_next: Any) -> Response:
            query_token = request.query_params.get("token")
            refusal = self.guard.check(
                request.method, request.url.path, {k.lower(): v for k, v in request.headers.items()},
                dict(request.cookies), query_token,
            )
            if refusal is not None:
                return JSONResponse({"error": refusal.message}, status_code=refusal.status)
            response = await call_next(request)
            if self.guard.token_valid(query_token):
                response.set_cookie(
                    self.guard.cookie_name, self.guard.token, httponly=True, samesite="strict", path="/"
                )
            return response

        @app.get("/", include_in_schema=False)
        async def root(request: Request) -> Response:
            """With the token: set the cookie (the middleware) and go to the page; without: say where it is."""
            if self.guard.token_valid(request.query_params.get("token")):
                return RedirectResponse("/ui/")
            return HTMLResponse(NO_TOKEN_PAGE)  # also Jina's readiness probe, which must get a 200

        @app.get("/api/questions")
        async def questions(
            n: int | None = None, k: int | None = None, strategy: str | None = None, pin: str | None = None,
            client: str = "",
        ) -> dict:
            started = time.perf_counter()
            settings = (await self.call("pool", "/settings"))[0]["settings"]
            parameters = {
                "n": settings["questions"] if n is None else n,
                "k": settings["top_k"] if k is None else k,
                "strategy": strategy or settings["strategy"],
                "client": client,
                "pin": pin or "",
            }
            result = (await self.call("index", "/questions", parameters))[0]
            ids = sorted({q["query_id"] for q in result["questions"]} | {
                m["id"] for q in result["questions"] for m in q["matches"]
            })
            cards = (await self.call("pool", "/cards", {"ids": ids}))[0]["cards"] if ids else {}
            result["cards"] = cards
            result["elapsed_ms"] = round((time.perf_counter() - started) * 1000, 1)
            return result

        @app.post("/api/labels")
        async def labels(request: Request) -> dict:
            data = await body(request)
            labels = data.get("labels")
            if isinstance(labels, list) and len(labels) > MAX_LABELS_PER_ROUND:
                raise ApiError(
                    f"{len(labels)} labels in one round; at most {MAX_LABELS_PER_ROUND} (questions x top_k)", 413
                )
            return (await self.call("pool", "/labels", {"labels": labels, "client": data.get("client")}))[0]

        @app.post("/api/fit")
        async def fit(request: Request) -> dict:
            data = await body(request)
            settings = (await self.call("pool", "/settings"))[0]["settings"]
            _, sessions = await self.call("pool", "/sessions")
            epochs = data.get("epochs", settings["epochs"])
            return (await self.call("tuner", "/fit", {"epochs": epochs}, docs=sessions))[0]

        @app.get("/api/progress")
        async def progress() -> dict:
            counts = (await self.call("pool", "/progress"))[0]
            index = (await self.call("index", "/status"))[0]
            tuner = (await self.call("tuner", "/fit_status"))[0]
            return {**counts, "index": index, "fit": tuner}

        @app.get("/api/settings")
        async def get_settings() -> dict:
            return (await self.call("pool", "/settings"))[0]

        @app.post("/api/settings")
        async def set_settings(request: Request) -> dict:
            return (await self.call("pool", "/settings", {"update": await body(request)}))[0]

        @app.post("/api/save")
        async def save(request: Request) -> dict:
            """``finetuner.save`` the newest fitted model; ``{"export": true}`` also writes a serving ONNX."""
            data = await body(request) if await request.body() else {}
            return (await self.call("tuner", "/save", {"export": bool(data.get("export"))}))[0]

        @app.post("/api/export")
        async def export() -> dict:
            return (await self.call("pool", "/export"))[0]

        @app.get("/api/export/labels.json")
        async def export_json() -> Response:
            _, sessions = await self.call("pool", "/sessions")
            rows = [
                {"query_id": q.id, "match_id": m.id, "label": int(m.tags["finetuner_label"])}
                for q in sessions
                for m in q.matches
            ]
            return Response(
                json.dumps({"labels": rows}, indent=1),
                media_type="application/json",
                headers={"Content-Disposition": 'attachment; filename="labels.json"'},
            )

        @app.post("/api/stop")
        async def stop() -> dict:
            if self.workdir:
                (Path(self.workdir) / "stop.request").write_text(str(time.time()))
            return {"stopping": True}

        app.mount("/ui", StaticFiles(directory=str(UI_DIR), html=True), name="ui")
        return app
