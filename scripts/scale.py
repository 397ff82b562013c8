"""`make scale`: three replicas on one PostgreSQL behind HAProxy, under load with feedback, one replica killed with
SIGKILL at random moments and restarted. Reports calls, lost decision rows, lost or refused feedback, 5xx, replays
refused across replicas and the rule-set revision of each replica; exits 1 when anything was lost.

Everything runs on loopback from the OS packages (PostgreSQL's server binaries, `haproxy`), in production mode
(JWTs checked, the replay check in the database), each replica as `python -m service serve` with one worker,
MSCC_DECISION_WRITE=database and its journal folder on shared storage. Bounded: `--seconds` of load (default 40).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import create_engine, text

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.jwtkit import BASE_URL, Signer, issuers_file, sign_many  # noqa: E402
from tests.pgserver import PostgresServer, free_port, postgres_server, server_binaries  # noqa: E402

SERVICE = "mscc-patient-view"
HAPROXY_TEMPLATE = ROOT / "deploy" / "haproxy" / "haproxy.cfg"
REQUEST = json.loads((ROOT / "fhir_examples" / "requests" / "01-mscc-breast-cancer-leg-weakness.json").read_text())
REQUEST.pop("extension", None)  # production mode: evaluated now


class Replica:
    """One `python -m service serve` in its own process group; `kill` is SIGKILL to all of it."""

    def __init__(self, index: int, port: int, env: dict[str, str], work: Path) -> None:
        self.index, self.port, self.env, self.work = index, port, env, work
        self.process: subprocess.Popen[bytes] | None = None
        self.kills = 0

    def start(self) -> None:
        log = (self.work / f"replica-{self.index}.log").open("ab")
        command = [sys.executable, "-m", "service", "serve", "--port", str(self.port)]
        self.process = subprocess.Popen(
            command, cwd=ROOT, env={**os.environ, **self.env}, stdout=log, stderr=log, start_new_session=True
        )

    def wait_ready(self, seconds: float = 60) -> None:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"http://127.0.0.1:{self.port}/readyz", timeout=1).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        raise SystemExit(f"replica {self.index} was not ready in {seconds} s; see {self.work}")

    def kill(self) -> None:
        if self.process is not None and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout=10)
            self.kills += 1


def haproxy_config(work: Path, port: int, replicas: list[Replica]) -> Path:
    servers = "\n".join(
        f"    server replica{r.index} 127.0.0.1:{r.port} check inter 500 fall 1 rise 2" for r in replicas
    )
    text_ = HAPROXY_TEMPLATE.read_text().replace("{{port}}", str(port)).replace("{{servers}}", servers)
    path = work / "haproxy.cfg"
    path.write_text(text_)
    return path


class Load:
    """Clients calling through the load balancer, each answered card followed by its feedback."""

    def __init__(self, base: str, tokens: list[str]) -> None:
        self.base = base
        self.tokens = iter(tokens)
        self.lock = threading.Lock()
        self.statuses: Counter[int] = Counter()
        self.feedback_statuses: Counter[int] = Counter()
        self.cards: list[str] = []
        self.feedback_accepted: list[str] = []
        self.errors = 0
        self.first_error = ""
        self.stop = threading.Event()

    def token(self) -> str:
        with self.lock:
            return next(self.tokens)

    def client(self) -> None:
        with httpx.Client(timeout=30) as http:
            while not self.stop.is_set():
                try:
                    answer = http.post(
                        f"{self.base}/cds-services/{SERVICE}",
                        json=REQUEST,
                        headers={"Authorization": f"Bearer {self.token()}"},
                    )
                except StopIteration:
                    return  # the signed tokens are used up: this client is done
                except httpx.HTTPError as error:
                    with self.lock:
                        self.errors += 1
                        self.first_error = self.first_error or repr(error)
                    time.sleep(0.05)
                    continue
                with self.lock:
                    self.statuses[answer.status_code] += 1
                if answer.status_code != 200 or not answer.json()["cards"]:
                    continue
                card = answer.json()["cards"][0]
                with self.lock:
                    self.cards.append(card["uuid"])
                self.feedback(http, card)

    def feedback(self, http: httpx.Client, card: dict[str, Any]) -> None:
        item = {
            "card": card["uuid"],
            "outcome": "accepted",
            "outcomeTimestamp": "2026-12-06T09:05:00Z",
            "acceptedSuggestions": [{"id": card["suggestions"][0]["uuid"]}],
        }
        deadline = time.monotonic() + 60  # an EHR sends again what it was told to (503), for a minute
        while time.monotonic() < deadline:
            try:
                answer = http.post(
                    f"{self.base}/cds-services/{SERVICE}/feedback",
                    json={"feedback": [item]},
                    headers={"Authorization": f"Bearer {self.token()}"},
                )
            except StopIteration:
                return
            except httpx.HTTPError:
                time.sleep(0.5)
                continue
            with self.lock:
                self.feedback_statuses[answer.status_code] += 1
            if answer.status_code == 200:
                with self.lock:
                    self.feedback_accepted.append(card["uuid"])
                return
            if answer.status_code not in (401, 503):
                return
            # 503: storage could not take it, send again. 401: HAProxy re-sent the request after the replica that
            # had it died having already used the token (the shared replay check): a new token, as the EHR's next
            # call would carry.
            time.sleep(0.5)


def killer(replicas: list[Replica], stop: threading.Event, rng: random.Random) -> None:
    """SIGKILL one replica at a random moment, restart it a second later, again and again."""
    while not stop.wait(rng.uniform(2.0, 5.0)):
        victim = rng.choice(replicas)
        victim.kill()
        time.sleep(1.0)
        victim.start()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=40.0, help="how long the load runs")
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--seed", type=int, default=20261206)
    args = parser.parse_args()
    binaries = server_binaries()
    haproxy = shutil.which("haproxy") or ("/usr/sbin/haproxy" if Path("/usr/sbin/haproxy").exists() else None)
    if binaries is None or haproxy is None:
        print("make scale needs PostgreSQL's server binaries and haproxy (apt-get install postgresql haproxy)")
        return 2
    rng = random.Random(args.seed)  # noqa: S311 -- which replica dies when, repeatably: not a secret
    work = Path(tempfile.mkdtemp(prefix="mscc-scale-"))
    lb_port = free_port()
    base = f"http://127.0.0.1:{lb_port}"
    signer = Signer(kind="RSA")
    issuers = issuers_file(work / "issuers.yaml", signer)
    tokens = sign_many(signer, int((args.seconds + OUTAGE_SECONDS) * 1500) + 100, SERVICE)
    print(f"signed {len(tokens)} tokens; work folder {work}", flush=True)
    with postgres_server(binaries) as database:
        url = database.url
        common = {
            "MSCC_DATABASE_URL": url,
            "MSCC_DECISION_WRITE": "database",
            "MSCC_REPLAY_CHECK": "database",
            "MSCC_ISSUERS_FILE": str(issuers),
            "MSCC_PUBLIC_BASE_URL": BASE_URL,
            "MSCC_SPOOL_SHARED_ROOT": str(work / "journal"),
            "MSCC_SPOOL_ADOPT_SECONDS": "6",
            "MSCC_SPOOL_DRAIN_SECONDS": "1",
            "MSCC_LOG_LEVEL": "WARNING",
        }
        replicas = [
            Replica(i, free_port(), {**common, "MSCC_SPOOL_DIR": str(work / "journal" / f"replica-{i}")}, work)
            for i in range(1, 4)
        ]
        for replica in replicas:
            replica.start()
        for replica in replicas:
            replica.wait_ready()
        balancer = subprocess.Popen(
            [haproxy, "-db", "-f", str(haproxy_config(work, lb_port, replicas))],
            stdout=(work / "haproxy.log").open("wb"),
            stderr=subprocess.STDOUT,
        )
        try:
            time.sleep(1.5)  # the health checks see every replica up
            split = int(len(tokens) * args.seconds / (args.seconds + OUTAGE_SECONDS))
            load = Load(base, tokens[:split])
            stop_killing = threading.Event()
            threads = [threading.Thread(target=load.client, daemon=True) for _ in range(args.clients)]
            murderer = threading.Thread(target=killer, args=(replicas, stop_killing, rng), daemon=True)
            started = time.monotonic()
            for thread in [*threads, murderer]:
                thread.start()
            time.sleep(args.seconds)
            stop_killing.set()
            murderer.join()
            load.stop.set()
            for thread in threads:
                thread.join(timeout=60)
            elapsed = time.monotonic() - started
            for replica in replicas:
                if replica.process is None or replica.process.poll() is not None:
                    replica.start()
            for replica in replicas:
                replica.wait_ready()
            replay = replay_refused(replicas, signer)
            revisions = {r.index: health(r.port)["rulesetRevision"] for r in replicas}
            time.sleep(1.0)
            stored_cards, stored_feedback = stored(url)
            outage = outage_phase(base, replicas, database, tokens[split:], args.clients)
        finally:
            balancer.terminate()
            balancer.wait(timeout=10)
            for replica in replicas:
                replica.kill()
    answered = len(load.cards)
    lost_rows = [c for c in load.cards if c not in stored_cards]
    lost_feedback = [c for c in load.feedback_accepted if c not in stored_feedback]
    refused_feedback = answered - len(load.feedback_accepted)
    five_xx = sum(n for status, n in load.statuses.items() if status >= 500)
    five_xx += sum(n for status, n in load.feedback_statuses.items() if status >= 500 and status != 503)
    print()
    print(f"### make scale: 3 replicas, HAProxy, PostgreSQL, {args.clients} clients, {elapsed:.0f} s, replicas killed")
    print()
    print("| measure | value |")
    print("| --- | ---: |")
    print(f"| hook calls answered (200, with a card) | {answered:,} ({answered / elapsed:.0f} calls/s) |")
    print(f"| hook call statuses | {dict(sorted(load.statuses.items()))} |")
    print(
        f"| of them 401 because HAProxy re-sent a call whose dying replica had used its token | {load.statuses[401]} |"
    )
    print(f"| connection errors at the client | {load.errors} {load.first_error} |")
    print(f"| replicas killed with SIGKILL (and restarted) | {sum(r.kills for r in replicas) - 3} |")
    print(f"| decision rows lost (answered cards not in PostgreSQL) | {len(lost_rows)} |")
    print(f"| feedback sent / accepted | {answered:,} / {len(load.feedback_accepted):,} |")
    print(f"| feedback statuses (401 and 503 are sent again) | {dict(sorted(load.feedback_statuses.items()))} |")
    print(f"| feedback lost (accepted, not stored) / refused for good | {len(lost_feedback)} / {refused_feedback} |")
    print(f"| 5xx answered (503 to feedback, sent again, excepted) | {five_xx} |")
    print(f"| a token replayed to another replica refused | {replay} |")
    print(f"| rule-set revision of each replica | {revisions} |")
    failed = bool(lost_rows or lost_feedback or refused_feedback or five_xx or load.errors or not answered)
    failed = failed or not replay or len(set(revisions.values())) != 1
    print()
    print(f"### PostgreSQL down {OUTAGE_DOWN:.0f} s under load; replica 3 killed during the outage, never restarted")
    print()
    print("| measure | value |")
    print("| --- | ---: |")
    for name, value in outage.items():
        print(f"| {name} | {value} |")
    failed = failed or bool(outage["decision rows lost"] or outage["feedback lost / refused for good"] != "0 / 0")
    failed = failed or bool(outage["5xx answered"] or outage["connection errors at the client"])
    print()
    print("FAIL" if failed else "PASS")
    shutil.rmtree(work, ignore_errors=True)
    return 1 if failed else 0


OUTAGE_SECONDS = 20.0  # the second phase: load, PostgreSQL down, a replica lost for good, PostgreSQL back
OUTAGE_DOWN = 8.0


def stored(url: str) -> tuple[set[str], set[str]]:
    """(card uuids with a decision row, card uuids with feedback) in PostgreSQL."""
    engine = create_engine(url)
    with engine.connect() as connection:
        cards = {row[0] for row in connection.execute(text("SELECT card_uuid FROM decisions"))}
        feedback = {row[0] for row in connection.execute(text("SELECT card_uuid FROM feedback"))}
    engine.dispose()
    return cards, feedback


def outage_phase(
    base: str, replicas: list[Replica], database: PostgresServer, tokens: list[str], clients: int
) -> dict[str, Any]:
    """Load through the balancer; PostgreSQL stopped for OUTAGE_DOWN seconds; during it replica 3 is killed and
    stays dead (its journal on the shared folder is drained by the others); then every answered card must reach
    PostgreSQL and every feedback be stored, nothing refused for good."""
    load = Load(base, tokens)
    threads = [threading.Thread(target=load.client, daemon=True) for _ in range(clients)]
    for thread in threads:
        thread.start()
    time.sleep(4)
    database.stop()
    time.sleep(OUTAGE_DOWN / 2)
    replicas[2].kill()  # gone for good: nobody restarts it
    time.sleep(OUTAGE_DOWN / 2)
    database.start()
    time.sleep(OUTAGE_SECONDS - 4 - OUTAGE_DOWN)
    load.stop.set()
    for thread in threads:
        thread.join(timeout=120)
    journal = replicas[2].env["MSCC_SPOOL_DIR"]
    deadline = time.monotonic() + 60
    cards, feedback = stored(database.url)
    while time.monotonic() < deadline and not set(load.cards) <= cards:
        time.sleep(1)
        cards, feedback = stored(database.url)
    answered = len(load.cards)
    five_xx = sum(n for status, n in load.statuses.items() if status >= 500)
    five_xx += sum(n for status, n in load.feedback_statuses.items() if status >= 500 and status != 503)
    lost_feedback = len([c for c in load.feedback_accepted if c not in feedback])
    return {
        "hook calls answered (200, with a card)": f"{answered:,}",
        "hook call statuses": dict(sorted(load.statuses.items())),
        "connection errors at the client": load.errors,
        "decision rows lost": len([c for c in load.cards if c not in cards]),
        "feedback statuses (503: storage down, sent again)": dict(sorted(load.feedback_statuses.items())),
        "feedback lost / refused for good": f"{lost_feedback} / {answered - len(load.feedback_accepted)}",
        "5xx answered": five_xx,
        "the lost replica's journal drained by the others": not Path(journal).exists(),
    }


def health(port: int) -> dict[str, Any]:
    return dict(httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=5).json())


def replay_refused(replicas: list[Replica], signer: Signer) -> bool:
    """One token, answered by the first replica, sent again to the second: refused (the shared replay check)."""
    token = signer.token(SERVICE)
    headers = {"Authorization": f"Bearer {token}"}
    first = httpx.post(f"http://127.0.0.1:{replicas[0].port}/cds-services/{SERVICE}", json=REQUEST, headers=headers)
    again = httpx.post(f"http://127.0.0.1:{replicas[1].port}/cds-services/{SERVICE}", json=REQUEST, headers=headers)
    return first.status_code == 200 and again.status_code == 401


if __name__ == "__main__":
    raise SystemExit(main())
