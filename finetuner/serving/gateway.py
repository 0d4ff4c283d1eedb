"""The serving Flow's gateway: Jina's gateways, with HTTP replies that are always valid JSON.

Jina's HTTP gateway answers a failed request by echoing its Documents beside the error. A tensor holding NaN or
infinity can be sent (Python's JSON reader takes ``NaN``), the Executor refuses it by name, but the echoed reply
cannot be written as JSON, so Jina answered a bare ``500 Internal Server Error`` that named nothing. Here every
reply of the HTTP gateway (and of the WebSocket gateway's JSON subprotocol) passes :func:`json_safe_reply`:
non-finite numbers become ``null``, and a reply that carried any is a failed one whose ``header.status`` names each
Document and field. gRPC replies are protobuf and need none of this; gRPC keeps Jina's own gateway.
"""

from __future__ import annotations

import math
from collections.abc import AsyncIterator, Sequence
from typing import Any

from jina.parsers.helper import _get_gateway_class
from jina.proto import jina_pb2
from jina.serve.runtimes.gateway.gateway import BaseGateway
from jina.serve.runtimes.gateway.http import HTTPGateway
from jina.serve.runtimes.gateway.websocket import WebSocketGateway
from jina.serve.runtimes.servers.composite import CompositeBaseServer

ERROR_CODE = jina_pb2.StatusProto.ERROR


def _replace_non_finite(value: Any, path: str, found: dict[str, None]) -> Any:
    """``value`` with every NaN/inf float replaced by None; the paths of the replaced ones are keys of ``found``."""
    if isinstance(value, float):
        if math.isfinite(value):
            return value
        found[path] = None
        return None
    if isinstance(value, dict):
        return {k: _replace_non_finite(v, f"{path}.{k}" if path else str(k), found) for k, v in value.items()}
    if isinstance(value, list):
        try:  # a row of numbers (a tensor's innermost lists): one C-speed sum instead of a Python loop
            if math.isfinite(math.fsum(value)):
                return value
        except (TypeError, OverflowError):  # not all numbers, or finite numbers whose sum overflows
            pass
        return [_replace_non_finite(v, path, found) for v in value]
    return value


def json_safe_reply(reply: dict[str, Any]) -> dict[str, Any]:
    """A gateway reply (``DataRequest.to_dict()``) that JSON can carry, with each non-finite value named.

    Non-finite numbers in the echoed Documents become ``null``. A failed reply keeps its error (the Executor's
    message already names the Document); a reply that would have succeeded fails, naming the Documents and
    fields, because the client would otherwise receive ``null`` where it sent numbers.
    """
    problems: list[str] = []
    documents = []
    for i, doc in enumerate(reply.get("data") or []):
        found: dict[str, None] = {}
        documents.append(_replace_non_finite(doc, "", found))
        if found:
            name = doc.get("id", f"#{i}") if isinstance(doc, dict) else f"#{i}"
            fields = ", ".join(found)
            problems.append(
                f"Document {name!r} has NaN or infinite values in {fields}, which JSON cannot carry"
            )
    rest_found: dict[str, None] = {}
    rest = {k: _replace_non_finite(v, k, rest_found) for k, v in reply.items() if k != "data"}
    if not problems and not rest_found:
        return reply
    if rest_found:
        problems.append(f"the reply has NaN or infinite values in {', '.join(rest_found)}")
    safe = {**rest, "data": documents}
    header = dict(safe.get("header") or {})
    status = header.get("status") or {}
    if status.get("code") != ERROR_CODE:
        message = "; ".join(problems) + ": send finite numbers."
        header["status"] = {
            "code": ERROR_CODE,
            "description": message,
            "exception": {"name": "DocumentError", "args": [message], "stacks": [], "executor": "gateway"},
        }
        safe["header"] = header
    return safe


class _JsonSafeResult:
    """A Jina ``DataRequest`` whose ``to_dict()`` is :func:`json_safe_reply`'s; everything else is the request's."""

    def __init__(self, request: Any) -> None:
        self._request = request

    def __getattr__(self, name: str) -> Any:
        return getattr(self._request, name)

    def to_dict(self) -> dict[str, Any]:
        return json_safe_reply(self._request.to_dict())


class _JsonSafeStreamer:
    """Jina's ``GatewayStreamer`` whose streamed results render as JSON-safe dicts (what the HTTP app sends)."""

    def __init__(self, streamer: Any) -> None:
        self._streamer = streamer

    def __getattr__(self, name: str) -> Any:
        return getattr(self._streamer, name)

    async def rpc_stream(self, *args: Any, **kwargs: Any) -> AsyncIterator[Any]:
        async for result in self._streamer.rpc_stream(*args, **kwargs):
            yield _JsonSafeResult(result)


class ServingHTTPGateway(HTTPGateway):
    """Jina's HTTP gateway (the same routes: ``/post``, ``/status``, the CRUD ones) over a JSON-safe streamer."""

    @property
    def app(self) -> Any:
        from jina.helper import extend_rest_interface
        from jina.serve.runtimes.gateway.http_fastapi_app import get_fastapi_app

        return extend_rest_interface(
            get_fastapi_app(
                streamer=_JsonSafeStreamer(self._request_handler.streamer),
                title=self.title,
                description=self.description,
                no_debug_endpoints=self.no_debug_endpoints,
                no_crud_endpoints=self.no_crud_endpoints,
                expose_endpoints=self.expose_endpoints,
                expose_graphql_endpoint=self.expose_graphql_endpoint,
                cors=self.cors,
                logger=self.logger,
                tracing=self.tracing,
                tracer_provider=self.tracer_provider,
            )
        )


class ServingWebSocketGateway(WebSocketGateway):
    """Jina's WebSocket gateway over a JSON-safe streamer: its JSON subprotocol (the default for clients that name
    none, such as a browser's) wrote ``NaN`` tokens that strict JSON readers refuse; protobuf clients are unchanged.

    Jina's ``setup_server`` assigns ``self.app`` its default app; the setter builds this one in its place.
    """

    @property
    def app(self) -> Any:
        return self._json_safe_app

    @app.setter
    def app(self, jina_default: Any) -> None:
        from jina.helper import extend_rest_interface
        from jina.serve.runtimes.gateway.websocket_fastapi_app import get_fastapi_app

        self._json_safe_app = extend_rest_interface(
            get_fastapi_app(
                streamer=_JsonSafeStreamer(self._request_handler.streamer),
                logger=self.logger,
                tracing=self.tracing,
                tracer_provider=self.tracer_provider,
            )
        )


_JSON_GATEWAYS = {"HTTP": ServingHTTPGateway, "WEBSOCKET": ServingWebSocketGateway}


class ServingGateway(CompositeBaseServer, BaseGateway):
    """One server per protocol of the Flow: the JSON-safe ones for HTTP and WebSocket, Jina's own for gRPC."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.servers = []
        for server_kwargs in self._server_kwargs:
            protocol = server_kwargs["runtime_args"]["protocol"]
            name = str(protocol).upper().rsplit(".", 1)[-1]  # ProtocolType.HTTP, or its name after a copy
            server_cls = _JSON_GATEWAYS.get(name) or _get_gateway_class(protocol)
            self.servers.append(server_cls(**server_kwargs))
        self.gateways = self.servers


def gateway_for(protocols: Sequence[str]) -> type | None:
    """The gateway class a Flow serving ``protocols`` should use: None (Jina's own) when only gRPC is served."""
    if not any(p.upper() in _JSON_GATEWAYS for p in protocols):
        return None
    return _JSON_GATEWAYS[protocols[0].upper()] if len(protocols) == 1 else ServingGateway
