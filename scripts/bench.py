"""Benchmark: patient-view calls and in-process evaluation for prefetches of 10 to 10,000 resources.

Every number is reported next to a baseline measured in the same run on the same machine:
- HTTP: our service vs a FastAPI endpoint that only parses the same JSON (both real uvicorn processes on loopback);
- in process: our record + rules + card vs fhir.resources validating the same Bundle.
Run: `make bench` (or `.venv/bin/python scripts/bench.py --sizes 100 1000`).
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import statistics
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
NOW = datetime(2026, 11, 20, 9, tzinfo=UTC)
SCT = "http://snomed.info/sct"
JSON_HEADERS = {"content-type": "application/json"}


def synthetic_resources(n: int, patient: str = "bench") -> list[dict[str, Any]]:
    """n resources like a real chart: mostly lab Observations and old Conditions, plus MSCC warning signs."""
    signs = [
        ("Condition", "254837009", "Malignant neoplasm of breast", "2021-03-01"),
        ("Condition", "279039007", "Low back pain", "2026-11-15"),
        ("Observation", "26544005", "Muscle weakness", "2026-11-19"),
    ]
    out: list[dict[str, Any]] = []
    for i in range(n):
        subject = {"reference": f"Patient/{patient}"}
        if i < len(signs):
            kind, code, display, date = signs[i]
        elif i % 4 == 0:
            kind, code, display, date = "Condition", "38341003", "Hypertensive disorder", "2019-06-01"
        else:
            kind, code, display, date = "Observation", "2345-7", "Glucose", f"2026-{1 + i % 11:02d}-{1 + i % 27:02d}"
        if kind == "Condition":
            out.append(
                {
                    "resourceType": "Condition",
                    "id": f"c{i}",
                    "subject": subject,
                    "recordedDate": date,
                    "clinicalStatus": {"coding": [{"code": "active"}]},
                    "code": {"coding": [{"system": SCT, "code": code, "display": display}]},
                }
            )
        else:
            system = SCT if code == "26544005" else "http://loinc.org"
            extra: dict[str, Any] = {"valueQuantity": {"value": 5.4, "unit": "mmol/L"}} if system != SCT else {}
            out.append(
                {
                    "resourceType": "Observation",
                    "id": f"o{i}",
                    "status": "final",
                    "subject": subject,
                    "effectiveDateTime": date,
                    "code": {"coding": [{"system": system, "code": code, "display": display}]},
                    **extra,
                }
            )
    return out


def searchset(resources: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "resourceType": "Bundle",
        "type": "searchset",
        "total": len(resources),
        "entry": [{"resource": r, "search": {"mode": "match"}} for r in resources],
    }


def hook_request(resources: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "hookInstance": str(uuid.uuid4()),
        "hook": "patient-view",
        "context": {"userId": "Practitioner/bench", "patientId": "bench"},
        "prefetch": {
            "conditions": searchset([r for r in resources if r["resourceType"] == "Condition"]),
            "observations": searchset([r for r in resources if r["resourceType"] == "Observation"]),
        },
        "extension": {"org.mscc-cds.evaluation-time": NOW.isoformat()},
    }


def median_ms(func: Callable[[], object], repeat: int) -> float:
    func()  # warm-up
    samples = []
    for _ in range(repeat):
        started = time.perf_counter()
        func()
        samples.append((time.perf_counter() - started) * 1000)
    return statistics.median(samples)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start(app: str, port: int, env: dict[str, str]) -> subprocess.Popen[bytes]:
    command = [
        sys.executable,
        "-m",
        "uvicorn",
        "--factory" if "create_app" in app else "--no-access-log",
        app,
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--log-level",
        "warning",
        "--no-access-log",
    ]
    process = subprocess.Popen(command, cwd=ROOT, env={**os.environ, **env})
    for _ in range(200):
        try:
            httpx.get(f"http://127.0.0.1:{port}/docs", timeout=0.5)
            return process
        except httpx.HTTPError:
            time.sleep(0.05)
    process.kill()
    raise SystemExit(f"{app} did not start")


def in_process(sizes: list[int]) -> list[dict[str, Any]]:
    from fhir.resources.R4B.bundle import Bundle

    from service.cdshooks.cards import CardContext, render_card
    from service.engine.evaluation import evaluate_record
    from service.engine.loader import load_ruleset
    from service.fhir.record import build_record

    ruleset = load_ruleset(ROOT / "rules")
    rows = []
    for n in sizes:
        resources = synthetic_resources(n)
        bundle = {"resourceType": "Bundle", "type": "collection", "entry": [{"resource": r} for r in resources]}
        repeat = 30 if n <= 1000 else 5

        def ours(relevant: object = ruleset.relevant) -> object:
            record = build_record("bench", resources, relevant=relevant)  # type: ignore[arg-type]  # noqa: B023
            return render_card(evaluate_record(ruleset, record, NOW), ruleset, CardContext(lambda: "u"))

        def validate_all() -> object:
            return Bundle.model_validate(bundle)  # noqa: B023

        card = ours()
        assert card is not None
        assert card.indicator == "critical"
        mine, base = median_ms(ours, repeat), median_ms(validate_all, repeat)
        full = median_ms(lambda ours=ours: ours(None), repeat)
        rows.append({"resources": n, "ours_ms": mine, "baseline_ms": base, "ratio": mine / base, "full_ms": full})
    return rows


def over_http(sizes: list[int]) -> list[dict[str, Any]]:
    ours_port, base_port = free_port(), free_port()
    env = {"MSCC_DEV_MODE": "true", "MSCC_LOG_LEVEL": "WARNING", "PYTHONPATH": str(ROOT / "scripts" / "bench")}
    servers = [start("service.app:create_app", ours_port, env), start("baseline_app:app", base_port, env)]
    rows = []
    try:
        with httpx.Client(timeout=60) as client:
            for n in sizes:
                body = json.dumps(hook_request(synthetic_resources(n))).encode()
                repeat = 30 if n <= 1000 else 5

                def call(port: int, body: bytes = body) -> object:
                    url = f"http://127.0.0.1:{port}/cds-services/mscc-patient-view"
                    answer = client.post(url, content=body, headers=JSON_HEADERS)
                    answer.raise_for_status()
                    return answer

                assert call(ours_port).json()["cards"][0]["indicator"] == "critical"  # type: ignore[attr-defined]
                mine = median_ms(lambda call=call: call(ours_port), repeat)
                base = median_ms(lambda call=call: call(base_port), repeat)
                rows.append(
                    {"resources": n, "bytes": len(body), "ours_ms": mine, "baseline_ms": base, "ratio": mine / base}
                )
    finally:
        for server in servers:
            server.terminate()
            server.wait(timeout=10)
    return rows


def fetch_cost(repeat: int = 30) -> dict[str, float]:
    """p50 of the same patient-view call with full prefetch and with none (fetched from a FHIR server on loopback)."""
    import tempfile

    import yaml

    from tests.fhirserver import running_fhir_server

    with running_fhir_server() as (fhir_base, _), tempfile.TemporaryDirectory() as tmp:
        issuers = Path(tmp) / "issuers.yaml"
        issuers.write_text(
            yaml.safe_dump({"issuers": [{"iss": "https://bench.example", "fhir_servers": [fhir_base + "/fhir"]}]})
        )
        port = free_port()
        env = {
            "MSCC_DEV_MODE": "true",
            "MSCC_LOG_LEVEL": "WARNING",
            "MSCC_ISSUERS_FILE": str(issuers),
            "MSCC_DATABASE_URL": f"sqlite:///{tmp}/bench.sqlite3",
        }
        server = start("service.app:create_app", port, env)
        try:
            with_prefetch = json.loads(
                (ROOT / "fhir_examples/requests/01-mscc-breast-cancer-leg-weakness.json").read_text()
            )
            without = {k: v for k, v in with_prefetch.items() if k != "prefetch"} | {"fhirServer": fhir_base + "/fhir"}
            url = f"http://127.0.0.1:{port}/cds-services/mscc-patient-view"
            with httpx.Client(timeout=30) as client:

                def call(body: dict[str, Any]) -> object:
                    answer = client.post(url, json=body)
                    assert answer.status_code == 200, answer.text
                    return answer

                prefetched = median_ms(lambda: call(with_prefetch), repeat)
                fetched = median_ms(lambda: call(without), repeat)
        finally:
            server.terminate()
            server.wait(timeout=10)
    return {"prefetched_ms": prefetched, "fetched_ms": fetched, "added_ms": fetched - prefetched}


def table(title: str, rows: list[dict[str, Any]], baseline: str) -> str:
    lines = [
        f"### {title}",
        "",
        f"| resources | ours p50 (ms) | {baseline} p50 (ms) | ratio |",
        "| ---: | ---: | ---: | ---: |",
    ]
    lines += [f"| {r['resources']:,} | {r['ours_ms']:.1f} | {r['baseline_ms']:.1f} | {r['ratio']:.2f}x |" for r in rows]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--sizes", type=int, nargs="+", default=[10, 100, 1000, 10000])
    parser.add_argument("--json", type=Path, help="also write the raw numbers here")
    args = parser.parse_args()
    http_rows = over_http(args.sizes)
    local_rows = in_process(args.sizes)
    fetch = fetch_cost()
    print(table("patient-view over HTTP (uvicorn, loopback, keep-alive)", http_rows, "parse-only FastAPI"))
    print()
    print(
        table(
            "in process, hook path: record (relevant resources validated) + rules + card",
            local_rows,
            "fhir.resources Bundle validation",
        )
    )
    print()
    print(
        "/evaluate path (validates every Condition and Observation): "
        + ", ".join(f"{r['resources']:,}: {r['full_ms']:.1f} ms" for r in local_rows)
    )
    print()
    print(
        f"FHIR fetch (4 searches, FHIR server on loopback): p50 {fetch['fetched_ms']:.1f} ms without prefetch, "
        f"{fetch['prefetched_ms']:.1f} ms with it: the fetch adds {fetch['added_ms']:.1f} ms"
    )
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps({"http": http_rows, "in_process": local_rows, "fetch": fetch}, indent=2))


if __name__ == "__main__":
    main()
