"""`rules expand`: SNOMED CT is-a value sets filled from a terminology server (a stub on 127.0.0.1), then served."""

from __future__ import annotations

import json
import shutil
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from authoring.__main__ import main
from service.config import PROJECT_ROOT
from service.engine.loader import load_ruleset
from service.errors import RuleSetInvalid
from service.fhir.codes import SNOMED
from tests.fhirserver import FhirJsonHandler

# A corner of the SNOMED CT hierarchy: is-a 363346000 Malignant neoplastic disease.
DESCENDANTS = {
    "363346000": [
        ("363346000", "Malignant neoplastic disease"),
        ("314994000", "Metastasis from malignant tumor of prostate"),
        ("363406005", "Malignant tumor of colon"),
        ("254837009", "Malignant neoplasm of breast"),
        ("1187332001", "Adenocarcinoma of prostate"),  # a newer concept, not in any published list we ship
    ]
}
PAGE_SIZE = 2


class _Terminology(FhirJsonHandler):
    server: _Server

    def do_POST(self) -> None:  # noqa: N802 - the name http.server dispatches to
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        self.server.requests.append(body)
        if self.server.fail or self.path != "/fhir/ValueSet/$expand":
            self._send(500, {"resourceType": "OperationOutcome", "issue": [{"severity": "error", "code": "exception"}]})
            return
        params = {p["name"]: p for p in body["parameter"]}
        compose = params["valueSet"]["resource"]["compose"]
        codes = [
            c
            for part in compose["include"]
            for f in part.get("filter", [])
            if f["op"] == "is-a"
            for c in DESCENDANTS.get(f["value"], [])
        ]
        offset = params["offset"]["valueInteger"]
        page = codes[offset : offset + PAGE_SIZE]
        expansion = {
            "identifier": "urn:uuid:6b1e7f34-0000-4000-8000-000000000001",
            "timestamp": "2026-11-25T10:00:00Z",
            "total": len(codes),
            "offset": offset,
            "parameter": [
                {
                    "name": "version",
                    "valueUri": "http://snomed.info/sct|http://snomed.info/sct/900000000000207008/version/20260901",
                }
            ],
            "contains": [{"system": SNOMED, "code": c, "display": d} for c, d in page],
        }
        self._send(200, {"resourceType": "ValueSet", "status": "active", "expansion": expansion})


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _Terminology)
        self.requests: list[dict[str, Any]] = []
        self.fail = False


@contextmanager
def terminology_server() -> Iterator[_Server]:
    server = _Server()
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture
def rules(tmp_path: Path) -> Path:
    """The shipped rules, with the SNOMED CT part of `cancer` defined intensionally (is-a 363346000)."""
    copy = tmp_path / "rules"
    shutil.copytree(PROJECT_ROOT / "rules", copy)
    path = copy / "valuesets" / "cancer-snomed.json"
    valueset = json.loads(path.read_text())
    valueset["compose"] = {
        "include": [
            {"system": SNOMED, "filter": [{"property": "concept", "op": "is-a", "value": "363346000"}]},
        ]
    }
    path.write_text(json.dumps(valueset, indent=2))
    return copy


def test_an_is_a_value_set_is_refused_until_expanded_then_served(rules: Path, capsys) -> None:
    with pytest.raises(RuleSetInvalid) as refused:
        load_ruleset(rules)
    assert any("rules expand --server" in p.problem for p in refused.value.problems)
    with terminology_server() as server:
        url = f"http://127.0.0.1:{server.server_port}/fhir"
        assert main(["rules", "expand", "--server", url, "--rules", str(rules)]) == 0
    assert "expanded cancer-snomed.json: 5 codes" in capsys.readouterr().out
    assert [r["parameter"][1]["valueInteger"] for r in server.requests] == [0, 2, 4]  # paged by offset
    sent = server.requests[0]["parameter"][0]["resource"]["compose"]
    assert sent == {
        "include": [{"system": SNOMED, "filter": [{"property": "concept", "op": "is-a", "value": "363346000"}]}]
    }
    expansion = json.loads((rules / "valuesets" / "cancer-snomed.json").read_text())["expansion"]
    assert {"name": "used-server", "valueUri": url} in expansion["parameter"]
    assert {"name": "expanded-include", "valueString": "compose.include[0]"} in expansion["parameter"]
    assert any(p["name"] == "version" for p in expansion["parameter"])  # the edition the server used
    with pytest.raises(RuleSetInvalid) as frozen:  # the released versions that read it must not change quietly
        load_ruleset(rules)
    assert all("value set(s) cancer-snomed it reads changed" in p.problem for p in frozen.value.problems)
    assert all("rules release" in p.problem for p in frozen.value.problems)
    ruleset = load_ruleset(rules, strict=False)  # as a draft sees it, before the new versions are released
    assert "cancer" in ruleset.codes.lookup((SNOMED, "1187332001"))  # a code no shipped list has


def test_a_failing_server_writes_nothing_and_says_why(rules: Path, capsys) -> None:
    before = (rules / "valuesets" / "cancer-snomed.json").read_text()
    with terminology_server() as server:
        server.fail = True
        url = f"http://127.0.0.1:{server.server_port}/fhir"
        assert main(["rules", "expand", "--server", url, "--rules", str(rules)]) == 1
    assert "answered 500 to $expand" in capsys.readouterr().err
    assert (rules / "valuesets" / "cancer-snomed.json").read_text() == before


def test_an_unreachable_server_is_a_clear_error(rules: Path, capsys) -> None:
    assert main(["rules", "expand", "--server", "http://127.0.0.1:9/fhir", "--rules", str(rules)]) == 1
    assert "could not be reached" in capsys.readouterr().err


def test_the_shipped_rules_need_no_terminology_server(capsys) -> None:
    assert main(["rules", "expand", "--server", "http://127.0.0.1:9/fhir"]) == 0  # nothing to send, no call made
    assert "no value set needs a terminology server" in capsys.readouterr().out
