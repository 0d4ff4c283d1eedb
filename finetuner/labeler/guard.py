"""Who may talk to the Labeler: its own page with this run's secret token, and nobody else.

Any web page the user visits can send requests to ``http://127.0.0.1:PORT`` (cross-site ``text/plain`` POSTs
need no CORS preflight), and a DNS-rebinding page can even read the answers under its own host name. So every
request must:

- name an allowed host in ``Host`` (loopback names and the bound address; any host when bound to all
  interfaces, where the token alone guards);
- come from the Labeler's own origin when the browser says where it comes from (``Origin``, ``Sec-Fetch-Site``);
- carry the run's token: the ``?token=`` of the URL the command printed (which sets a ``SameSite=Strict``,
  ``HttpOnly`` cookie and redirects to the page), that cookie, or an ``X-Finetuner-Token`` header for scripts;
- stay on the Labeler's own paths (``/``, ``/ui/``, ``/api/``): Jina's raw ``/post`` and friends are closed;
- for ``POST /api/*``: declare ``Content-Type: application/json`` and a ``Content-Length`` up to
  :data:`MAX_BODY_BYTES` (413 above it).

Only ``GET /`` answers without a token (a short page saying where the real URL is), because Jina's readiness
probe polls it.
"""

from __future__ import annotations

import hmac
from dataclasses import dataclass, field
from urllib.parse import urlsplit

__all__ = ["MAX_BODY_BYTES", "TOKEN_HEADER", "Guard", "Refusal"]

MAX_BODY_BYTES = 1 << 20  # a round of 1,000 labels is about 100 kB
TOKEN_HEADER = "x-finetuner-token"
LOOPBACK_NAMES = frozenset({"127.0.0.1", "localhost", "::1"})
ANY_ADDRESS = frozenset({"0.0.0.0", "::", ""})
OWN_PATHS = ("/api/", "/ui/")


@dataclass(frozen=True)
class Refusal:
    """Why a request is refused: the HTTP status and a message that says what to do."""

    status: int
    message: str


@dataclass
class Guard:
    """The checks for one Labeler run: its ``token``, the ``host`` it is bound to and its ``port``."""

    token: str
    host: str
    port: int
    extra_hosts: frozenset[str] = field(default_factory=frozenset)

    @property
    def cookie_name(self) -> str:
        """Per port, so two Labelers on one machine do not overwrite each other's cookie."""
        return f"finetuner_labeler_{self.port}"

    def host_allowed(self, host_header: str) -> bool:
        """Whether ``Host: host_header`` names this Labeler (DNS rebinding sends the attacker's name)."""
        if self.host in ANY_ADDRESS:
            return True
        name = urlsplit(f"//{host_header}").hostname or ""
        return name in LOOPBACK_NAMES | {self.host} | self.extra_hosts

    def token_valid(self, candidate: str | None) -> bool:
        return bool(candidate) and hmac.compare_digest(candidate.encode(), self.token.encode())

    def check(
        self, method: str, path: str, headers: dict[str, str], cookies: dict[str, str], query_token: str | None
    ) -> Refusal | None:
        """None when the request may go on, else the :class:`Refusal`. ``headers`` have lower-case names."""
        host = headers.get("host", "")
        if not self.host_allowed(host):
            return Refusal(403, f"Host {host!r} is not this Labeler's address: open the URL finetuner printed")
        origin = headers.get("origin")
        if origin is not None and origin != f"http://{host}":
            return Refusal(403, f"requests from {origin!r} are refused: only the Labeler's own page may call it")
        if headers.get("sec-fetch-site", "same-origin") not in ("same-origin", "none"):
            return Refusal(403, "cross-site requests are refused: only the Labeler's own page may call it")
        if path != "/" and not path.startswith(OWN_PATHS) and path != "/ui":
            return Refusal(404, f"{path} is not a Labeler path (the page is /ui/, the API /api/)")
        authorised = any(
            self.token_valid(value)
            for value in (headers.get(TOKEN_HEADER), cookies.get(self.cookie_name), query_token)
        )
        if not authorised and not (method == "GET" and path == "/"):
            return Refusal(403, "missing or wrong token: open the URL with ?token=... that finetuner printed")
        if method == "POST" and path.startswith("/api/"):
            content_type = headers.get("content-type", "").split(";")[0].strip().lower()
            if content_type != "application/json":
                return Refusal(415, "POST /api/* needs Content-Type: application/json")
            length = headers.get("content-length")
            if length is None or not length.isdigit():
                return Refusal(411, "POST /api/* needs a Content-Length")
            if int(length) > MAX_BODY_BYTES:
                return Refusal(413, f"the request body is {length} bytes; the limit is {MAX_BODY_BYTES}")
        return None
