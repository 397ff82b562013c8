"""The integration guide's recipe, as written: a key pair, its issuers entry, a signed token, a call in production
mode; and the clock-skew grace the guide documents (60 s past `exp`)."""

from __future__ import annotations

import time
from pathlib import Path

from fastapi.testclient import TestClient

from authoring.__main__ import main
from authoring.devtoken import read_key, service_url, sign
from service.runtime import system_clock
from tests.helpers import hook_request

URL = "/cds-services/mscc-patient-view"
BASE = "https://cds.example.org"


def test_keygen_and_sign_let_a_call_through_production_mode(make_app, tmp_path: Path, capsys) -> None:
    key = tmp_path / "dev-ehr-key.json"
    assert main(["token", "keygen", "--key", str(key), "--iss", "https://ehr.dev.example"]) == 0
    issuers = tmp_path / "issuers.yaml"
    issuers.write_text(capsys.readouterr().out, encoding="utf-8")
    assert key.stat().st_mode & 0o777 == 0o600
    assert main(["token", "sign", "--key", str(key), "--iss", "https://ehr.dev.example", "--base-url", BASE]) == 0
    token = capsys.readouterr().out.strip()
    app = make_app(dev_mode=False, issuers_file=issuers, public_base_url=BASE, clock=system_clock)
    with TestClient(app) as client:
        body = hook_request("01-mscc-breast-cancer-leg-weakness")
        assert client.post(URL, json=body).status_code == 401
        answer = client.post(URL, json=body, headers={"Authorization": f"Bearer {token}"})
        assert answer.status_code == 200
        assert answer.json()["cards"][0]["indicator"] == "critical"
    assert main(["token", "keygen", "--key", str(key)]) == 1  # never overwrites a key
    assert "exists" in capsys.readouterr().err


def test_a_token_is_accepted_60_seconds_past_its_expiry_and_refused_after(make_app, tmp_path: Path, capsys) -> None:
    key_file = tmp_path / "k.json"
    assert main(["token", "keygen", "--key", str(key_file), "--iss", "https://ehr.dev.example"]) == 0
    issuers = tmp_path / "issuers.yaml"
    issuers.write_text(capsys.readouterr().out, encoding="utf-8")
    key = read_key(key_file)
    audience = service_url(BASE, "mscc-patient-view")
    app = make_app(dev_mode=False, issuers_file=issuers, public_base_url=BASE, clock=system_clock)
    body = hook_request("01-mscc-breast-cancer-leg-weakness")
    with TestClient(app) as client:
        late = sign(key, "https://ehr.dev.example", audience, now=time.time() - 300 - 45)  # expired 45 s ago
        assert client.post(URL, json=body, headers={"Authorization": f"Bearer {late}"}).status_code == 200
        stale = sign(key, "https://ehr.dev.example", audience, now=time.time() - 300 - 90)  # expired 90 s ago
        assert client.post(URL, json=body, headers={"Authorization": f"Bearer {stale}"}).status_code == 401


def test_signing_without_a_key_says_how_to_make_one(tmp_path: Path, capsys) -> None:
    assert main(["token", "sign", "--key", str(tmp_path / "none.json")]) == 1
    assert "python -m authoring token keygen" in capsys.readouterr().err
