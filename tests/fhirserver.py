"""A real FHIR server on 127.0.0.1 for tests: serves the fhir_examples/ patients with search by patient and paging.

It can also misbehave on request: answer slowly, fail, demand a token, or send a `next` link to another host.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

from authoring import fhirsearch

EXAMPLES = Path(__file__).resolve().parent.parent / "fhir_examples" / "patients"


@dataclass
class Behaviour:
    token: str | None = None
    delay: float = 0.0
    status: int = 200
    failing: str | None = None  # `status` only for requests whose path holds this text (None: every request)
    page_size: int = 50
    evil_next: str | None = None
    jwks: dict[str, Any] | None = None
    filters: str = "honour"  # "honour" the search filters, "ignore" them (send all), or "refuse" them (400)
    bundle_overrides: dict[str, Any] = field(default_factory=dict)  # fields set in every searchset page (odd shapes)
    seen: list[dict[str, str]] = field(default_factory=list)


def _all_resources() -> list[dict[str, Any]]:
    out = []
    for path in sorted(EXAMPLES.glob("*.json")):
        out += [e["resource"] for e in json.loads(path.read_text())["entry"]]
    return out


NOT_SUPPORTED = {"resourceType": "OperationOutcome", "issue": [{"severity": "error", "code": "not-supported"}]}


class FhirJsonHandler(BaseHTTPRequestHandler):
    """A quiet handler that answers FHIR JSON: the base of every stub server the tests run on 127.0.0.1."""

    def log_message(self, *args: Any) -> None:
        pass

    def _send(self, status: int, body: dict[str, Any]) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/fhir+json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


class _Handler(FhirJsonHandler):
    server: _Server

    def do_GET(self) -> None:
        behaviour = self.server.behaviour
        behaviour.seen.append({"path": self.path, "authorization": self.headers.get("Authorization", "")})
        if behaviour.delay:
            time.sleep(behaviour.delay)
        url = urlsplit(self.path)
        if url.path == "/jwks.json" and behaviour.jwks is not None:
            self._send(200, behaviour.jwks)
            return
        if behaviour.token and self.headers.get("Authorization") != f"Bearer {behaviour.token}":
            self._send(401, {"resourceType": "OperationOutcome", "issue": [{"severity": "error", "code": "login"}]})
            return
        if behaviour.status != 200 and (behaviour.failing is None or behaviour.failing in self.path):
            self._send(
                behaviour.status,
                {"resourceType": "OperationOutcome", "issue": [{"severity": "error", "code": "exception"}]},
            )
            return
        parts = url.path.strip("/").split("/")
        query = {k: v[0] for k, v in parse_qs(url.query).items()}
        if len(parts) == 3 and parts[0] == "fhir":
            match = [r for r in self.server.resources if r["resourceType"] == parts[1] and r.get("id") == parts[2]]
            self._send(200 if match else 404, match[0] if match else {"resourceType": "OperationOutcome", "issue": []})
            return
        if len(parts) == 2 and parts[0] == "fhir":
            paging = ("_count", "_offset")
            search = "&".join(p for p in url.query.split("&") if p and not p.startswith(paging))
            narrowed = any(not p.startswith(("patient=", "subject=")) for p in search.split("&") if p)
            if narrowed and behaviour.filters == "refuse":
                self._send(
                    400, {"resourceType": "OperationOutcome", "issue": [{"severity": "error", "code": "not-supported"}]}
                )
                return
            if behaviour.filters == "ignore":
                search = f"patient={query.get('patient', '')}"
            try:
                found = fhirsearch.search(self.server.resources, f"{parts[1]}?{search}")
            except fhirsearch.UnsupportedSearch:
                self._send(
                    400, {"resourceType": "OperationOutcome", "issue": [{"severity": "error", "code": "not-supported"}]}
                )
                return
            offset = int(query.get("_offset", 0))
            size = int(query.get("_count", behaviour.page_size))
            page = found[offset : offset + size]
            bundle: dict[str, Any] = {
                "resourceType": "Bundle",
                "type": "searchset",
                "total": len(found),
                "entry": [{"resource": r, "search": {"mode": "match"}} for r in page],
                "link": [],
            }
            if offset + size < len(found):
                base = behaviour.evil_next or f"http://127.0.0.1:{self.server.server_port}"
                bundle["link"].append(
                    {
                        "relation": "next",
                        "url": f"{base}/fhir/{parts[1]}?{search}&_count={size}&_offset={offset + size}",
                    }
                )
            self._send(200, {**bundle, **behaviour.bundle_overrides})
            return
        self._send(404, {"resourceType": "OperationOutcome", "issue": []})


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 64  # the default 5 drops a burst of 8 concurrent searches into a 1 s SYN retry

    def __init__(self, behaviour: Behaviour) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.behaviour = behaviour
        self.resources = _all_resources()


@contextmanager
def running_fhir_server(behaviour: Behaviour | None = None) -> Iterator[tuple[str, Behaviour]]:
    """Yield (base URL, behaviour) of a server that stops when the block ends."""
    behaviour = behaviour or Behaviour()
    server = _Server(behaviour)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}", behaviour
    finally:
        server.shutdown()
        server.server_close()
