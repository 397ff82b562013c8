"""Rule changes without a restart: a valid change is swapped in whole, a broken one is refused while the old rule
set keeps serving (logged, counted, shown in /readyz), and each decision row names the revision that answered."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
from fastapi.testclient import TestClient

from service.config import PROJECT_ROOT
from tests.helpers import active_file, caught_up_store, hook_request, new_version, next_minor

URL = "/cds-services/mscc-patient-view"


def add_draft(rules: Path) -> None:
    new_version(rules, "mscc-suspected", "draft")


def break_rules(rules: Path) -> None:
    path = rules / active_file("mscc-suspected")
    path.write_text(path.read_text().replace("status: active", "status: activ"))


def revision_of_row(client: TestClient, card_uuid: str) -> str:
    store = caught_up_store(client.app)
    with store.sessions.begin() as session:
        return str(store.decision_by_card(session, card_uuid).ruleset_revision)


def test_a_valid_change_is_swapped_in_and_each_decision_names_its_revision(make_app, rules: Path) -> None:
    with TestClient(make_app(rules_dir=rules, rules_reload_seconds=0)) as client:
        before = client.get("/healthz").json()["rulesetRevision"]
        first = client.post(URL, json=hook_request("01-mscc-breast-cancer-leg-weakness")).json()["cards"][0]
        add_draft(rules)
        answer = client.post("/rules/reload")
        assert answer.status_code == 200
        assert answer.json()["outcome"] == "swapped"
        after = answer.json()["rulesetRevision"]
        assert after != before
        assert client.get("/healthz").json()["rulesetRevision"] == after
        assert next_minor("mscc-suspected") in [
            v["version"] for r in client.get("/rules").json()["rules"] for v in r["versions"]
        ]
        second = client.post(URL, json=hook_request("01-mscc-breast-cancer-leg-weakness")).json()["cards"][0]
        assert revision_of_row(client, first["uuid"]) == before
        assert revision_of_row(client, second["uuid"]) == after
        assert client.post("/rules/reload").json()["outcome"] == "unchanged"


def test_a_broken_change_is_refused_and_the_old_rule_set_keeps_serving(make_app, rules: Path, caplog) -> None:
    import logging

    with TestClient(make_app(rules_dir=rules, rules_reload_seconds=0)) as client:
        before = client.get("/healthz").json()["rulesetRevision"]
        break_rules(rules)
        with caplog.at_level(logging.ERROR, logger="service.rules"):
            refused = client.post("/rules/reload")
        assert refused.status_code == 422
        assert refused.json()["error"] == "rule_set_invalid"
        assert any("status: Input should be" in d for d in refused.json()["details"])
        assert any(r.getMessage().startswith("changed rule set refused") for r in caplog.records)
        answer = client.post(URL, json=hook_request("01-mscc-breast-cancer-leg-weakness"))
        assert answer.json()["cards"][0]["indicator"] == "critical"  # still served, by the old rules
        assert answer.json()["extension"]["org.mscc-cds.evaluation"]["rulesetRevision"] == before
        ready = client.get("/readyz")
        assert ready.status_code == 200
        assert f"serving {before}" in ready.json()["checks"]["rulesReload"]
        assert 'mscc_rules_reloads_total{outcome="refused"} 1.0' in client.get("/metrics").text


def test_every_worker_picks_up_a_change_from_the_files(make_app, rules: Path) -> None:
    with TestClient(make_app(rules_dir=rules, rules_reload_seconds=0.05)) as client:
        before = client.get("/healthz").json()["rulesetRevision"]
        add_draft(rules)
        deadline = time.monotonic() + 10
        while client.get("/healthz").json()["rulesetRevision"] == before and time.monotonic() < deadline:
            time.sleep(0.05)
        assert client.get("/healthz").json()["rulesetRevision"] != before


def test_sighup_reloads_a_running_server(rules: Path, tmp_path: Path) -> None:
    """A real `python -m service serve` process on loopback, a real signal."""
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    env = {
        **os.environ,
        "MSCC_DEV_MODE": "true",
        "MSCC_RULES_DIR": str(rules),
        "MSCC_RULES_RELOAD_SECONDS": "0",
        "MSCC_DATABASE_URL": f"sqlite:///{tmp_path / 'serve.sqlite3'}",
    }
    server = subprocess.Popen(
        [sys.executable, "-m", "service", "serve", "--port", str(port)],
        cwd=PROJECT_ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 20
        before = None
        while before is None and time.monotonic() < deadline:
            try:
                before = httpx.get(f"{base}/healthz", timeout=1).json()["rulesetRevision"]
            except httpx.HTTPError:
                time.sleep(0.1)
        assert before is not None, "the server did not start"
        add_draft(rules)
        server.send_signal(signal.SIGHUP)
        after = before
        while after == before and time.monotonic() < deadline:
            time.sleep(0.1)
            after = httpx.get(f"{base}/healthz", timeout=1).json()["rulesetRevision"]
        assert after != before
        assert server.poll() is None  # reloaded, not stopped
    finally:
        server.terminate()
        server.wait(10)


def test_long_lived_objects_are_frozen_after_start_up_and_after_a_swap(make_app, rules: Path) -> None:
    import gc

    gc.unfreeze()
    with TestClient(make_app(rules_dir=rules, rules_reload_seconds=0)) as client:
        assert gc.get_freeze_count() > 10_000  # the rule set and its index
        add_draft(rules)
        assert client.post("/rules/reload").json()["outcome"] == "swapped"
        assert gc.get_freeze_count() > 10_000
    gc.unfreeze()
