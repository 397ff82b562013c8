"""Benchmark (`make bench`): the patient-view hook in production mode (a signed RS384 JWT per call) against a
FastAPI endpoint that only parses the same JSON, each figure beside its baseline measured in the same run.

1. Latency, one worker each, interleaved call by call: ours in production mode, ours in development mode, the
   parse-only endpoint, and that endpoint with the JWT check a CDS service must make (the floor for a service
   that verifies its callers), for prefetches of 10 to 10,000 resources (p50 of raw keep-alive calls on loopback).
2. Throughput, 2 workers each, closed loop with 8 and 32 clients for `--seconds`: calls/s, p50/p99, errors; for
   ours also how far the decision log fell behind the answers, how long it took to catch up, and whether every
   answered call has its row.
3. In process: record + rules + card against fhir.resources validating the same Bundle.
4. A patient-view call without prefetch, fetched from a FHIR server on loopback.
5. Minimal prefetch: bytes and latency of the real records in fhir_examples/realdata with the rules' filtered
   queries and with the unfiltered ones.
6. Start-up to ready: `serve --workers 2` in production against the parse-only endpoint, on every core and on one.
Everything runs on loopback and ends within its time bounds. Run: `make bench`, or
`.venv/bin/python scripts/bench.py --sizes 10 100 --seconds 5`.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "scripts" / "bench"))

from load import Connection, LoadResult, request_bytes, run_load  # noqa: E402

from tests.jwtkit import BASE_URL, Signer, issuers_file, sign_many  # noqa: E402
from tests.pgserver import server_binaries, throwaway_postgres  # noqa: E402

NOW = datetime.now(UTC).replace(microsecond=0)  # production mode evaluates at the real time: data dated from it
SCT = "http://snomed.info/sct"
JSON_HEADERS = {"content-type": "application/json"}


def synthetic_resources(n: int, patient: str = "bench") -> list[dict[str, Any]]:
    """n resources like a real chart: mostly lab Observations and old Conditions, plus MSCC warning signs."""
    signs = [
        ("Condition", "254837009", "Malignant neoplasm of breast", "2021-03-01"),
        ("Condition", "279039007", "Low back pain", (NOW - timedelta(days=5)).date().isoformat()),
        ("Observation", "26544005", "Muscle weakness", (NOW - timedelta(days=1)).date().isoformat()),
    ]
    out: list[dict[str, Any]] = []
    for i in range(n):
        subject = {"reference": f"Patient/{patient}"}
        if i < len(signs):
            kind, code, display, date = signs[i]
        elif i % 4 == 0:
            kind, code, display, date = "Condition", "38341003", "Hypertensive disorder", "2019-06-01"
        else:
            when = (NOW - timedelta(days=2 + i % 360)).date().isoformat()
            kind, code, display, date = "Observation", "2345-7", "Glucose", when
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


SERVICE_PATH = "/cds-services/mscc-patient-view"


def sign_tokens(signer: Signer, count: int) -> list[str]:
    return sign_many(signer, count, SERVICE_PATH.rsplit("/", 1)[-1])


class Server:
    """A server process on loopback: ours (`python -m service serve`) or the parse-only baseline."""

    def __init__(self, name: str, command: list[str], env: dict[str, str], port: int, log: Path) -> None:
        self.name, self.port = name, port
        self.log = log.open("wb")
        self.process = subprocess.Popen(command, cwd=ROOT, env={**os.environ, **env}, stdout=self.log, stderr=self.log)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise SystemExit(f"{name} stopped at start-up; see {log}")
            try:
                httpx.get(f"http://127.0.0.1:{port}/docs", timeout=0.5)
                return
            except httpx.HTTPError:
                time.sleep(0.1)
        self.stop()
        raise SystemExit(f"{name} did not start within 60 s; see {log}")

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.process.kill()
        self.log.close()


def ours(name: str, work: Path, issuers: Path, *, dev: bool, workers: int) -> Server:
    port = free_port()
    database = work / f"{name}.sqlite3"
    env = {
        "MSCC_DATABASE_URL": f"sqlite:///{database}",
        "MSCC_ISSUERS_FILE": str(issuers),
        "MSCC_PUBLIC_BASE_URL": BASE_URL,
        "PROMETHEUS_MULTIPROC_DIR": str(Path(tempfile.mkdtemp(dir=work))),
    }
    command = [sys.executable, "-m", "service", "serve", "--port", str(port), "--workers", str(workers)]
    server = Server(name, [*command, "--dev"] if dev else command, env, port, work / f"{name}.log")
    server.database = database  # type: ignore[attr-defined]
    return server


def parse_only(work: Path, workers: int, *, verify_token: Path | None = None) -> Server:
    """The parse-only baseline; with `verify_token` (the issuers file) the one that also checks the JWT."""
    port = free_port()
    module, name = ("jwt_baseline_app", "parse+JWT") if verify_token else ("baseline_app", "parse-only")
    command = [sys.executable, "-m", "uvicorn", f"{module}:app", "--port", str(port), "--workers", str(workers)]
    command += ["--host", "127.0.0.1", "--log-level", "warning", "--no-access-log"]
    env = {"PYTHONPATH": str(ROOT / "scripts" / "bench")}
    if verify_token:
        env |= {"MSCC_ISSUERS_FILE": str(verify_token), "MSCC_PUBLIC_BASE_URL": BASE_URL}
    return Server(name, command, env, port, work / f"{name.replace('+', '-')}.log")


def latency(sizes: list[int], work: Path, signer: Signer, issuers: Path) -> list[dict[str, Any]]:
    """p50 per size, the four servers called in turn (rotating who goes first) so drift hits all alike."""
    servers = [
        ours("prod", work, issuers, dev=False, workers=1),
        ours("dev", work, issuers, dev=True, workers=1),
        parse_only(work, 1),
        parse_only(work, 1, verify_token=issuers),
    ]
    rows = []
    try:
        plan = {n: (60 if n <= 100 else 30 if n <= 1000 else 7) for n in sizes}
        tokens = iter(sign_tokens(signer, 2 * (sum(plan.values()) + 2 * len(sizes)) + 1))  # +1: the forged one
        connections = {s.name: Connection(s.port) for s in servers}
        _check_the_jwt_baseline_refuses_a_forged_token(servers[-1], connections[servers[-1].name], next(tokens))
        for n in sizes:
            body = json.dumps(hook_request(synthetic_resources(n))).encode()
            samples: dict[str, list[float]] = {s.name: [] for s in servers}
            for round_ in range(plan[n] + 2):  # two warm-up rounds
                turn = servers[round_ % len(servers) :] + servers[: round_ % len(servers)]
                for server in turn:
                    token = next(tokens) if server.name in ("prod", "parse+JWT") else None
                    request = request_bytes(server.port, SERVICE_PATH, body, token)
                    started = time.perf_counter()
                    status, answer = connections[server.name].call(request)
                    elapsed = (time.perf_counter() - started) * 1000
                    if status != 200:
                        raise SystemExit(f"{server.name} answered {status}: {answer[:300]!r}")
                    if server.name in ("prod", "dev") and b'"critical"' not in answer:
                        raise SystemExit(f"{server.name} gave no critical card for {n} resources")
                    if round_ >= 2:
                        samples[server.name].append(elapsed)
            p50 = {name: statistics.median(values) for name, values in samples.items()}
            rows.append(
                {
                    "resources": n,
                    "bytes": len(body),
                    "prod_ms": p50["prod"],
                    "dev_ms": p50["dev"],
                    "baseline_ms": p50["parse-only"],
                    "jwt_baseline_ms": p50["parse+JWT"],
                    "ratio": p50["prod"] / p50["parse-only"],
                    "dev_ratio": p50["dev"] / p50["parse-only"],
                    "jwt_baseline_ratio": p50["parse+JWT"] / p50["parse-only"],
                    "jwt_ratio": p50["prod"] / p50["parse+JWT"],
                }
            )
        for connection in connections.values():
            connection.close()
    finally:
        for server in servers:
            server.stop()
    return rows


def _check_the_jwt_baseline_refuses_a_forged_token(server: Server, connection: Connection, token: str) -> None:
    """The second baseline must really check: a token whose signature was tampered with is refused."""
    head, payload, signature = token.split(".")
    forged = f"{head}.{payload}.{signature[:-4]}{'AAAA' if signature[-4:] != 'AAAA' else 'BBBB'}"
    status, _ = connection.call(request_bytes(server.port, SERVICE_PATH, b"{}", forged))
    if status != 401:
        raise SystemExit(f"{server.name} answered {status} to a forged token: it is not a JWT-checking baseline")


def decisions_stored(database: Path) -> int:
    import sqlite3

    try:
        with sqlite3.connect(f"file:{database}?mode=ro", uri=True, timeout=5) as connection:
            return int(connection.execute("SELECT count(*) FROM decisions").fetchone()[0])
    except sqlite3.Error:
        return -1


def throughput(seconds: float, work: Path, signer: Signer, issuers: Path) -> dict[str, Any]:
    """Closed-loop load on 2 workers each; ours in production mode with a fresh token on every call."""
    body = json.dumps(hook_request(synthetic_resources(100))).encode()
    servers = [ours("prod-2w", work, issuers, dev=False, workers=2), parse_only(work, 2)]
    ours_server, floor = servers
    plan = [(8, ours_server), (8, floor), (32, ours_server), (32, floor)]
    per_run = int(2500 * (seconds + 1))
    tokens = sign_tokens(signer, per_run * 2 + 1)
    answered = 0  # every 200 from ours, warm-up included: each must have its decision row
    runs: list[dict[str, Any]] = []
    try:
        for index, (clients, server) in enumerate(plan):
            is_ours = server is ours_server
            requests: Iterator[bytes]
            if is_ours:  # a fresh token on every call: each is used once
                requests = iter([request_bytes(server.port, SERVICE_PATH, body, t) for t in tokens[:per_run]])
                tokens = tokens[per_run:]
            else:  # the parse-only endpoint reads no token: the same bytes for as long as the run lasts
                requests = itertools.repeat(request_bytes(server.port, SERVICE_PATH, body, tokens[-1]))
            warm = run_load(server.port, requests, clients, 1.0)
            answered += warm.ok if is_ours else 0
            result = LoadResult(seconds)
            behind: list[int] = []
            stop = threading.Event()

            def watch(
                result: LoadResult = result,
                base: int = answered,
                stop: threading.Event = stop,
                behind: list[int] = behind,
            ) -> None:
                while not stop.wait(0.25):
                    stored = decisions_stored(ours_server.database)  # type: ignore[attr-defined]
                    if stored >= 0:
                        behind.append(base + len(result.latencies_ms) - stored)

            watcher = threading.Thread(target=watch, daemon=True)
            if is_ours:
                watcher.start()
            run_load(server.port, requests, clients, seconds, result)
            stop.set()
            if is_ours:
                watcher.join()
                answered += result.ok
            row = {"server": "ours (production)" if is_ours else "parse-only", "clients": clients, **result.summary()}
            if is_ours:
                rate = max(result.rate, 1.0)
                row["log_behind_rows_max"] = max(behind, default=0)
                row["log_behind_s_max"] = round(max(behind, default=0) / rate, 2)
                started = time.monotonic()
                while decisions_stored(ours_server.database) < answered and time.monotonic() - started < 30:  # type: ignore[attr-defined]
                    time.sleep(0.05)
                row["log_caught_up_s"] = round(time.monotonic() - started, 2)
                row["rows_stored"] = decisions_stored(ours_server.database)  # type: ignore[attr-defined]
                row["rows_answered"] = answered
            runs.append(row)
            print(f"  throughput run {index + 1}/{len(plan)}: {row}", flush=True)
    finally:
        for server in servers:
            server.stop()
    return {"seconds": seconds, "runs": runs}


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
            return render_card(evaluate_record(ruleset, record, NOW), CardContext(lambda: "u"))

        def validate_all() -> object:
            return Bundle.model_validate(bundle)  # noqa: B023

        card = ours()
        assert card is not None
        assert card.indicator == "critical"
        mine, base = median_ms(ours, repeat), median_ms(validate_all, repeat)
        full = median_ms(lambda ours=ours: ours(None), repeat)
        rows.append({"resources": n, "ours_ms": mine, "baseline_ms": base, "ratio": mine / base, "full_ms": full})
    return rows


def jwt_cost(repeat: int = 300) -> dict[str, float]:
    """p50 of verifying one token in process (parse, key, signature, claims, replay table), per algorithm: the
    HTTP figures use RS384; an EHR signing with ES384 pays the difference on every call."""
    import asyncio

    from service.cdshooks.auth import JwtVerifier
    from service.cdshooks.issuers import IssuerRegistry
    from service.cdshooks.replay import HostReplayTable

    out = {}
    with tempfile.TemporaryDirectory() as folder:
        for kind, alg in (("RSA", "RS384"), ("EC", "ES384")):
            signer = Signer(kind=kind)
            registry = IssuerRegistry.load(issuers_file(Path(folder) / f"{alg}.yaml", signer))
            table = HostReplayTable(Path(folder) / f"{alg}.replay", slots=1 << 16)

            async def remember(key: str, expires: datetime, table: HostReplayTable = table) -> bool:
                return bool(table.remember(key, int(expires.timestamp()), int(time.time())))

            verifier = JwtVerifier(registry, None, BASE_URL, time.time, remember)  # type: ignore[arg-type]
            tokens = [signer.token() for _ in range(repeat)]

            async def run(verifier: JwtVerifier = verifier, tokens: list[str] = tokens) -> list[float]:
                samples = []
                for token in tokens:
                    started = time.perf_counter()
                    await verifier.verify(f"Bearer {token}", "mscc-patient-view")
                    samples.append((time.perf_counter() - started) * 1000)
                return samples

            out[alg] = statistics.median(asyncio.run(run()))
            table.close()
    return out


def realdata_charts() -> list[tuple[str, list[dict[str, Any]]]]:
    """The real records of fhir_examples/realdata as an EHR's FHIR API returns them: subjects as Patient/<id>."""
    import gzip

    charts = []
    for path in sorted((ROOT / "fhir_examples/realdata/smart-generated-sample-data-r4").glob("*.json.gz")):
        entries = json.loads(gzip.decompress(path.read_bytes())).get("entry", [])
        patient = next(e for e in entries if e["resource"]["resourceType"] == "Patient")
        names = {patient.get("fullUrl"), f"Patient/{patient['resource']['id']}"}
        resources = []
        for entry in entries:
            resource = entry["resource"]
            for field in ("subject", "patient"):
                if isinstance(resource.get(field), dict) and resource[field].get("reference") in names:
                    resource[field] = {"reference": f"Patient/{patient['resource']['id']}"}
            resources.append(resource)
        charts.append((patient["resource"]["id"], resources))
    return charts


def prefetch_savings(work: Path, signer: Signer, issuers: Path) -> dict[str, Any]:
    """Each real record sent as the full prefetch (the base queries) and as the rules' filtered queries: request
    bytes, and p50 of our production-mode service for each (interleaved)."""
    from authoring.fhirsearch import prefetch_as_ehr
    from service.engine.loader import load_ruleset

    ruleset = load_ruleset(ROOT / "rules")
    service = ruleset.service("mscc-patient-view")
    base = ruleset.service("mscc-patient-view", minimal_prefetch=False)
    assert service is not None
    assert base is not None
    charts = realdata_charts()
    if not charts:
        return {}
    server = ours("prefetch", work, issuers, dev=False, workers=1)
    rows = []
    try:
        repeat = 7
        tokens = iter(sign_tokens(signer, len(charts) * 2 * (repeat + 1)))
        connection = Connection(server.port)
        for patient_id, resources in charts:
            bodies = {}
            for name, templates in (("full", base.prefetch), ("filtered", service.prefetch)):
                sent = prefetch_as_ehr(templates, resources, patient_id)
                request = {
                    "hookInstance": str(uuid.uuid4()),
                    "hook": "patient-view",
                    "context": {"userId": "Practitioner/bench", "patientId": patient_id},
                    "prefetch": {k: searchset(v) for k, v in sent.items()},
                }
                bodies[name] = json.dumps(request).encode()
            samples: dict[str, list[float]] = {"full": [], "filtered": []}
            for round_ in range(repeat + 1):
                for name in ("full", "filtered") if round_ % 2 else ("filtered", "full"):
                    started = time.perf_counter()
                    status, answer = connection.call(
                        request_bytes(server.port, SERVICE_PATH, bodies[name], next(tokens))
                    )
                    if status != 200:
                        raise SystemExit(f"prefetch run answered {status}: {answer[:300]!r}")
                    if round_:
                        samples[name].append((time.perf_counter() - started) * 1000)
            rows.append(
                {
                    "patient": patient_id,
                    "full_bytes": len(bodies["full"]),
                    "filtered_bytes": len(bodies["filtered"]),
                    "full_ms": statistics.median(samples["full"]),
                    "filtered_ms": statistics.median(samples["filtered"]),
                }
            )
        connection.close()
    finally:
        server.stop()
    return {
        "patients": len(rows),
        "full_kib_median": statistics.median(r["full_bytes"] for r in rows) / 1024,
        "filtered_kib_median": statistics.median(r["filtered_bytes"] for r in rows) / 1024,
        "bytes_saved": 1 - sum(r["filtered_bytes"] for r in rows) / sum(r["full_bytes"] for r in rows),
        "full_ms_median": statistics.median(r["full_ms"] for r in rows),
        "filtered_ms_median": statistics.median(r["filtered_ms"] for r in rows),
        "rows": rows,
    }


def prefetch_line(result: dict[str, Any]) -> str:
    if not result:
        return "minimal prefetch: fhir_examples/realdata is missing; not measured"
    return (
        f"### minimal prefetch on the {result['patients']} real records of fhir_examples/realdata (production mode)\n\n"
        "| prefetch | request body, median | p50 of the per-record medians |\n| --- | ---: | ---: |\n"
        f"| full (base queries) | {result['full_kib_median']:,.0f} KiB | {result['full_ms_median']:.1f} ms |\n"
        f"| filtered (the rules' queries) | {result['filtered_kib_median']:,.0f} KiB "
        f"| {result['filtered_ms_median']:.1f} ms |\n\n"
        f"The filters leave out {result['bytes_saved']:.0%} of the bytes."
    )


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
        command = [sys.executable, "-m", "service", "serve", "--dev", "--port", str(port)]
        server = Server("fetch", command, env, port, Path(tmp) / "fetch.log")
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
            server.stop()
    return {"prefetched_ms": prefetched, "fetched_ms": fetched, "added_ms": fetched - prefetched}


def replica_cost(work: Path, calls: int = 300) -> dict[str, float] | None:
    """What writing each decision row to PostgreSQL before the answer costs (MSCC_DECISION_WRITE=database, for
    replicas that may die at any moment) against journaling it (one machine's mode): one worker each, on one
    throwaway PostgreSQL, 100 resources, called in turn. None without PostgreSQL's server binaries."""
    binaries = server_binaries()
    if binaries is None:
        return None
    with throwaway_postgres(binaries) as url:
        servers = []
        for mode in ("journal", "database"):
            port = free_port()
            env = {
                "MSCC_DATABASE_URL": url,
                "MSCC_DECISION_WRITE": mode,
                "MSCC_SPOOL_DIR": str(work / f"journal-{mode}"),
                "MSCC_LOG_LEVEL": "WARNING",
                "PROMETHEUS_MULTIPROC_DIR": str(Path(tempfile.mkdtemp(dir=work))),
            }
            command = [sys.executable, "-m", "service", "serve", "--port", str(port), "--dev"]
            servers.append(Server(mode, command, env, port, work / f"replica-{mode}.log"))
        try:
            body = json.dumps(hook_request(synthetic_resources(100))).encode()
            connections = {s.name: Connection(s.port) for s in servers}
            samples: dict[str, list[float]] = {s.name: [] for s in servers}
            for round_ in range(calls + 10):
                for server in servers[round_ % 2 :] + servers[: round_ % 2]:
                    started = time.perf_counter()
                    status, answer = connections[server.name].call(request_bytes(server.port, SERVICE_PATH, body, None))
                    if status != 200:
                        raise SystemExit(f"{server.name} answered {status}: {answer[:300]!r}")
                    if round_ >= 10:
                        samples[server.name].append((time.perf_counter() - started) * 1000)
            for connection in connections.values():
                connection.close()
        finally:
            for server in servers:
                server.stop()
    journal, database = (statistics.median(samples[m]) for m in ("journal", "database"))
    return {"journal_ms": journal, "database_ms": database, "ratio": database / journal}


def table(title: str, rows: list[dict[str, Any]], baseline: str) -> str:
    lines = [
        f"### {title}",
        "",
        f"| resources | ours p50 (ms) | {baseline} p50 (ms) | ratio |",
        "| ---: | ---: | ---: | ---: |",
    ]
    lines += [f"| {r['resources']:,} | {r['ours_ms']:.1f} | {r['baseline_ms']:.1f} | {r['ratio']:.2f}x |" for r in rows]
    return "\n".join(lines)


def latency_table(rows: list[dict[str, Any]]) -> str:
    lines = [
        "### patient-view over HTTP, p50, interleaved (1 worker each, loopback, keep-alive)",
        "",
        "| resources | body | ours, production (JWT) | ours, dev | FastAPI parse-only | parse-only + JWT check "
        "| production / parse-only | dev / parse-only | parse+JWT / parse-only | production / parse+JWT |",
        "| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    lines += [
        f"| {r['resources']:,} | {r['bytes'] / 1024:,.0f} KiB | {r['prod_ms']:.2f} ms | {r['dev_ms']:.2f} ms "
        f"| {r['baseline_ms']:.2f} ms | {r['jwt_baseline_ms']:.2f} ms | {r['ratio']:.2f}x | {r['dev_ratio']:.2f}x "
        f"| {r['jwt_baseline_ratio']:.2f}x | {r['jwt_ratio']:.2f}x |"
        for r in rows
    ]
    return "\n".join(lines)


def throughput_table(result: dict[str, Any]) -> str:
    lines = [
        f"### throughput, 100-resource prefetch, 2 workers each, {result['seconds']:g} s per run (closed loop)",
        "",
        "| server | clients | calls/s | p50 | p99 | non-200 | errors | decision log max behind | caught up in "
        "| rows stored / answered |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for r in result["runs"]:
        log = (
            f"{r['log_behind_rows_max']} rows ({r['log_behind_s_max']} s) | {r['log_caught_up_s']} s "
            f"| {r['rows_stored']:,} / {r['rows_answered']:,}"
            if "rows_stored" in r
            else "| |"
        )
        rate = f"{'>=' if r['ran_out'] else ''}{r['calls_per_s']:,.0f}"
        lines.append(
            f"| {r['server']} | {r['clients']} | {rate} | {r['p50_ms']} ms | {r['p99_ms']} ms "
            f"| {r['non_200']} | {r['errors']} | {log} |"
        )
    return "\n".join(lines)


def time_to_ready(command: list[str], env: dict[str, str], url: str, cpus: set[int] | None) -> float:
    """Seconds from the process start to the first 200 from `url` (bounded: 60 s), on these CPUs only."""

    def pin() -> None:
        if cpus is not None:
            os.sched_setaffinity(0, cpus)

    started = time.monotonic()
    process = subprocess.Popen(
        command, cwd=ROOT, env={**os.environ, **env}, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        preexec_fn=pin,  # affinity only, before exec
    )  # fmt: skip
    try:
        while time.monotonic() - started < 60:
            try:
                if httpx.get(url, timeout=0.5).status_code == 200:
                    return time.monotonic() - started
            except httpx.HTTPError:
                pass
            time.sleep(0.02)
        raise SystemExit(f"{command[:5]} was not ready within 60 s")
    finally:
        process.terminate()
        process.wait(timeout=30)


def startup(work: Path, issuers: Path, runs: int = 3) -> list[dict[str, Any]]:
    """Start-up to ready of `serve --workers 2` in production (SQLite; /readyz answers 200), beside the parse-only
    baseline with 2 workers (its first answer), on every core and on one: medians of `runs` starts."""
    rows = []
    one_cpu = {min(os.sched_getaffinity(0))}
    for cores, cpus in (("all", None), ("one", one_cpu)):
        ours_s, base_s = [], []
        for run in range(runs):
            port = free_port()
            env = {
                "MSCC_DATABASE_URL": f"sqlite:///{work / f'startup-{cores}-{run}.sqlite3'}",
                "MSCC_ISSUERS_FILE": str(issuers),
                "MSCC_PUBLIC_BASE_URL": BASE_URL,
                "MSCC_LOG_LEVEL": "WARNING",
            }
            command = [sys.executable, "-m", "service", "serve", "--port", str(port), "--workers", "2"]
            ours_s.append(time_to_ready(command, env, f"http://127.0.0.1:{port}/readyz", cpus))
            port = free_port()
            command = [sys.executable, "-m", "uvicorn", "baseline_app:app", "--port", str(port), "--workers", "2"]
            command += ["--log-level", "warning"]
            url = f"http://127.0.0.1:{port}/docs"
            base_s.append(time_to_ready(command, {"PYTHONPATH": str(ROOT / "scripts" / "bench")}, url, cpus))
        ours_median, base_median = statistics.median(ours_s), statistics.median(base_s)
        rows.append({"cores": cores, "ours_s": ours_median, "baseline_s": base_median})
    return rows


def startup_table(rows: list[dict[str, Any]]) -> str:
    lines = [
        "### start-up to ready, `serve --workers 2` production (median of 3 starts)",
        "",
        "| cores | ours (to /readyz 200) | parse-only, 2 workers | ours / parse-only |",
        "| --- | ---: | ---: | ---: |",
    ]
    for r in rows:
        lines.append(
            f"| {r['cores']} | {r['ours_s']:.2f} s | {r['baseline_s']:.2f} s | {r['ours_s'] / r['baseline_s']:.2f}x |"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--sizes", type=int, nargs="+", default=[10, 100, 1000, 10000])
    parser.add_argument("--seconds", type=float, default=10.0, help="length of each throughput run")
    parser.add_argument(
        "--skip",
        nargs="*",
        default=[],
        choices=["latency", "throughput", "local", "fetch", "prefetch", "startup", "replicas"],
    )
    parser.add_argument("--json", type=Path, help="also write the raw numbers here")
    args = parser.parse_args()
    results: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="mscc-bench-") as folder:
        work = Path(folder)
        signer = Signer(kind="RSA")
        issuers = issuers_file(work / "issuers.yaml", signer)
        if "latency" not in args.skip:
            results["latency"] = latency(args.sizes, work, signer, issuers)
            print(latency_table(results["latency"]), "\n", flush=True)
        if "prefetch" not in args.skip:
            results["prefetch"] = prefetch_savings(work, signer, issuers)
            print(prefetch_line(results["prefetch"]), "\n", flush=True)
        if "throughput" not in args.skip:
            results["throughput"] = throughput(args.seconds, work, signer, issuers)
            print(throughput_table(results["throughput"]), "\n", flush=True)
        if "startup" not in args.skip:
            results["startup"] = startup(work, issuers)
            print(startup_table(results["startup"]), "\n", flush=True)
        if "replicas" not in args.skip:
            cost = results["replicas"] = replica_cost(work)
            if cost is None:
                print("replicas: no PostgreSQL server binaries here; the database-first write was not measured\n")
            else:
                print(
                    "### replicas: each decision row to PostgreSQL before the answer (MSCC_DECISION_WRITE=database)\n\n"
                    f"p50 at 100 resources, one worker each, called in turn: journal {cost['journal_ms']:.2f} ms, "
                    f"database first {cost['database_ms']:.2f} ms ({cost['ratio']:.2f}x)\n",
                    flush=True,
                )
    if "local" not in args.skip:
        results["in_process"] = in_process(args.sizes)
        print(
            table(
                "in process, hook path: record (relevant resources validated) + rules + card",
                results["in_process"],
                "fhir.resources Bundle validation",
            )
        )
        print()
        print(
            "/evaluate path (validates every Condition and Observation): "
            + ", ".join(f"{r['resources']:,}: {r['full_ms']:.1f} ms" for r in results["in_process"])
        )
        print()
    jwt = results["jwt_ms"] = jwt_cost()
    print(f"JWT verification in process, p50: RS384 {jwt['RS384']:.3f} ms, ES384 {jwt['ES384']:.3f} ms\n")
    if "fetch" not in args.skip:
        fetch = results["fetch"] = fetch_cost()
        print(
            f"FHIR fetch (4 searches, FHIR server on loopback): p50 {fetch['fetched_ms']:.1f} ms without prefetch, "
            f"{fetch['prefetched_ms']:.1f} ms with it: the fetch adds {fetch['added_ms']:.1f} ms"
        )
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
