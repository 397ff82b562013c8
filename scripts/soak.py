"""Soak and fault suite (`make soak`): the service under load while a worker is killed, PostgreSQL is stopped and the
SQLite files are made read-only. Loopback only; every phase and every wait is bounded in time.

Each phase runs `python -m service serve --workers 2` in production mode (signed JWTs, so the replay check uses the
database), with clients that send hook calls and, the moment a card arrives, feedback on it. Then it checks:
- hook calls were answered throughout: no 5xx; a connection error only for calls in flight on the killed worker;
- every feedback the service acknowledged (200) is stored;
- every answered hook call has its decision row once storage is back (the spool caught up); a call cut off by the
  worker kill may have one too.
It prints the figures, and exits 1 when a check fails.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import httpx
from sqlalchemy import create_engine, text

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.helpers import hook_request  # noqa: E402
from tests.jwtkit import BASE_URL, Signer, issuers_file  # noqa: E402

PHASE_SECONDS = float(os.environ.get("SOAK_PHASE_SECONDS", "90"))
CLIENTS = int(os.environ.get("SOAK_CLIENTS", "4"))
SERVICE = "mscc-patient-view"
# Root ignores file permissions: the SQLite phase's server drops the capabilities that override them (util-linux).
DROP_OVERRIDES = [
    "setpriv",
    "--inh-caps=-dac_override,-dac_read_search",
    "--bounding-set=-dac_override,-dac_read_search",
]


@dataclass
class Tally:
    hooks: Counter[str] = field(default_factory=Counter)
    feedback: Counter[str] = field(default_factory=Counter)
    acknowledged: list[str] = field(default_factory=list)
    answered: int = 0
    answered_at: list[float] = field(default_factory=list)  # when each 200 arrived (monotonic)
    cards: list[str] = field(default_factory=list)  # the card of every call answered 200
    lock: threading.Lock = field(default_factory=threading.Lock)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_for(check: object, seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            if check():  # type: ignore[operator]
                return True
        except (httpx.HTTPError, OSError):
            pass
        time.sleep(0.2)
    return False


def client_loop(base: str, signer: Signer, stop: threading.Event, tally: Tally) -> None:
    body = hook_request("01-mscc-breast-cancer-leg-weakness")
    body.pop("extension", None)
    with httpx.Client(base_url=base, timeout=15) as client:
        while not stop.is_set():
            try:
                answer = client.post(  # a new connection each call: calls spread over both workers, the killed too
                    f"/cds-services/{SERVICE}",
                    json=body,
                    headers={"Authorization": f"Bearer {signer.token()}", "Connection": "close"},
                )
            except httpx.HTTPError as error:
                with tally.lock:
                    tally.hooks[f"connection error ({type(error).__name__})"] += 1
                continue
            with tally.lock:
                tally.hooks[str(answer.status_code)] += 1
                tally.answered += answer.status_code == 200
                if answer.status_code == 200:
                    tally.answered_at.append(time.monotonic())
            cards = answer.json().get("cards", []) if answer.status_code == 200 else []
            if not cards:
                continue
            card = cards[0]
            with tally.lock:
                tally.cards.append(card["uuid"])
            item = {"card": card["uuid"], "outcome": "accepted", "outcomeTimestamp": "2026-11-25T10:00:00Z",
                    "acceptedSuggestions": [{"id": card["suggestions"][0]["uuid"]}]}  # fmt: skip
            try:  # at once: the decision row may not be written yet, and storage may be down
                sent = client.post(
                    f"/cds-services/{SERVICE}/feedback",
                    json={"feedback": [item]},
                    headers={"Authorization": f"Bearer {signer.token(SERVICE + '/feedback')}"},
                )
            except httpx.HTTPError as error:
                with tally.lock:
                    tally.feedback[f"connection error ({type(error).__name__})"] += 1
                continue
            with tally.lock:
                tally.feedback[str(sent.status_code)] += 1
                if sent.status_code == 200:
                    tally.acknowledged.append(card["uuid"])


def workers_of(server: subprocess.Popen[bytes]) -> list[int]:
    """The worker processes (forked from the server), not multiprocessing's resource tracker (a child too)."""
    found: list[int] = []
    for task in Path(f"/proc/{server.pid}/task").glob("*/children"):
        for pid in task.read_text().split():
            try:
                command = Path(f"/proc/{pid}/cmdline").read_bytes()
            except OSError:  # it ended between the two reads
                continue
            if b"resource_tracker" not in command:
                found.append(int(pid))
    return found


@dataclass
class Phase:
    name: str
    database_url: str
    faults: list[tuple[float, str, object]]  # (seconds into the phase, what, how)
    drop_overrides: bool = False


def run_phase(phase: Phase, work: Path) -> tuple[dict[str, object], list[str]]:
    signer = Signer()
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    env = {k: v for k, v in os.environ.items() if k not in ("PROMETHEUS_MULTIPROC_DIR", "MSCC_DEV_MODE")}
    env |= {
        "MSCC_ISSUERS_FILE": str(issuers_file(work / "issuers.yaml", signer)),
        "MSCC_PUBLIC_BASE_URL": BASE_URL,
        "MSCC_DATABASE_URL": phase.database_url,
        "MSCC_SPOOL_DIR": str(work / "spool"),
        "MSCC_SPOOL_DRAIN_SECONDS": "1",
        "MSCC_LOG_LEVEL": "WARNING",
    }
    prefix = DROP_OVERRIDES if phase.drop_overrides and os.geteuid() == 0 else []
    command = [*prefix, sys.executable, "-m", "service", "serve", "--port", str(port), "--workers", "2"]
    log = (work / "server.log").open("w")
    server = subprocess.Popen(command, cwd=ROOT, env=env, stdout=log, stderr=log)
    problems: list[str] = []
    tally = Tally()
    try:
        if not wait_for(lambda: httpx.get(f"{base}/healthz", timeout=1).status_code == 200, 60):
            return {"phase": phase.name}, ["the service did not start"]
        stop = threading.Event()
        clients = [threading.Thread(target=client_loop, args=(base, signer, stop, tally)) for _ in range(CLIENTS)]
        for thread in clients:
            thread.start()
        started = time.monotonic()
        for at, what, action in phase.faults:
            time.sleep(max(0.0, started + at - time.monotonic()))
            print(f"  {time.monotonic() - started:5.1f} s  {what}", flush=True)
            action(server)  # type: ignore[operator]
        time.sleep(max(0.0, started + PHASE_SECONDS - time.monotonic()))
        stop.set()
        for thread in clients:
            thread.join(30)
        spool_empty = wait_for(lambda: "0 rows waiting" in httpx.get(f"{base}/readyz", timeout=2).text, 90)
        if not spool_empty:
            problems.append("the decision spool did not drain within 90 s")
    finally:
        stop_server(server)
        log.close()
    engine = create_engine(phase.database_url.replace("postgresql://", "postgresql+psycopg://"))
    with engine.connect() as connection:
        decisions = connection.execute(text("SELECT count(*) FROM decisions")).scalar_one()
        stored = {row[0] for row in connection.execute(text("SELECT card_uuid FROM feedback"))}
        decided = {row[0] for row in connection.execute(text("SELECT card_uuid FROM decisions"))}
    engine.dispose()
    rejected_file = work / "spool" / "rejected-decisions.jsonl"
    rejected = len(rejected_file.read_bytes().splitlines()) if rejected_file.exists() else 0
    missing = [card for card in tally.cards if card not in decided]
    lost = [card for card in tally.acknowledged if card not in stored]
    server_errors = sum(n for status, n in tally.hooks.items() if status.startswith("5"))
    dropped = sum(n for status, n in tally.hooks.items() if status.startswith("connection error"))
    if server_errors:
        problems.append(f"{server_errors} hook calls answered 5xx")
    feedback_errors = sum(n for status, n in tally.feedback.items() if status.startswith("5") and status != "503")
    if feedback_errors:  # storage down is a 503 ("send it again"), never a 500
        problems.append(f"{feedback_errors} feedback calls answered 5xx other than 503")
    if dropped > 2 * CLIENTS:
        problems.append(f"{dropped} hook calls lost their connection (more than those in flight on one worker)")
    if lost:
        problems.append(f"{len(lost)} acknowledged feedback items are not stored")
    # Every answered call has its row (stored before the answer left); a call whose connection broke when its worker
    # was killed may have its row too, though its answer never arrived: at most one per such call.
    if not tally.answered <= decisions <= tally.answered + dropped:
        problems.append(f"{tally.answered} hook calls answered 200 but {decisions} decision rows are stored")
    if missing:
        problems.append(f"{len(missing)} answered cards have no decision row, e.g. {missing[:5]}")
    if rejected:
        problems.append(f"{rejected} decision rows were refused by the database (see {rejected_file})")
    figures = {
        "phase": phase.name,
        "hook calls": sum(tally.hooks.values()),
        "hook answers": dict(sorted(tally.hooks.items())),
        "feedback sent": sum(tally.feedback.values()),
        "feedback answers": dict(sorted(tally.feedback.items())),
        "feedback acknowledged / stored": f"{len(tally.acknowledged)} / {len(tally.acknowledged) - len(lost)}",
        "decision rows expected / stored": f"{tally.answered} / {decisions}",
        "answered cards without a row": len(missing),
    }
    return figures, problems


def kill_a_worker(server: subprocess.Popen[bytes]) -> None:
    workers = workers_of(server)
    if len(workers) != 2:
        raise RuntimeError(f"expected 2 workers, found {len(workers)}")
    os.kill(workers[0], signal.SIGKILL)
    print(f"         worker {workers[0]} killed", flush=True)


def chmod_tree(folder: Path, mode_dir: int, mode_file: int) -> None:
    for path in folder.iterdir():
        path.chmod(mode_file)
    folder.chmod(mode_dir)


def postgres(work: Path) -> tuple[str, list[str], object, object]:
    """A PostgreSQL server of our own on loopback (Debian packages), and how to stop and start it again."""
    bin_dir = sorted(Path("/usr/lib/postgresql").glob("*/bin"))[-1]
    data = work / "pg"
    data.mkdir()
    os.chown(data, *_postgres_ids())
    port = free_port()

    def pg(*args: str) -> None:
        command = " ".join([str(bin_dir / args[0]), *args[1:]])
        subprocess.run(["su", "postgres", "-c", command], check=True, capture_output=True)

    pg("initdb", "-D", str(data), "-A", "trust", "-U", "postgres")
    options = f"'-p {port} -k /tmp -c listen_addresses=127.0.0.1'"

    def start(_server: object = None) -> None:
        pg("pg_ctl", "-D", str(data), "-o", options, "-l", str(data / "server.log"), "-w", "start")

    def stop(_server: object = None) -> None:
        pg("pg_ctl", "-D", str(data), "-m", "fast", "-w", "stop")

    start()
    return f"postgresql+psycopg://postgres@127.0.0.1:{port}/postgres", [str(data)], start, stop


def _postgres_ids() -> tuple[int, int]:
    import pwd

    entry = pwd.getpwnam("postgres")
    return entry.pw_uid, entry.pw_gid


def main() -> int:
    print(f"soak: {CLIENTS} clients, {PHASE_SECONDS:.0f} s a phase, serve --workers 2, production mode (signed JWTs)")
    failures: list[str] = []
    results: list[dict[str, object]] = []
    work = Path(tempfile.mkdtemp(prefix="mscc-soak-"))
    try:
        os.chmod(work, 0o755)  # noqa: S103 - the postgres user must reach its data folder inside
        sqlite_dir = work / "sqlite"
        sqlite_dir.mkdir()
        database = sqlite_dir / "soak.sqlite3"
        lock_files = (  # the worker restarted inside the read-only window opens its connections read-only
            (0.25, "SQLite files made read-only", lambda _s: chmod_tree(sqlite_dir, 0o555, 0o444)),
            (0.35, "kill a worker (SIGKILL): it restarts while the files are read-only", kill_a_worker),
            (0.65, "SQLite files writable again", lambda _s: chmod_tree(sqlite_dir, 0o755, 0o644)),
        )
        phases = [
            Phase(
                "SQLite",
                f"sqlite:///{database}",
                [(PHASE_SECONDS * at, what, how) for at, what, how in lock_files],
                drop_overrides=True,
            )
        ]
        if sorted(Path("/usr/lib/postgresql").glob("*/bin")):
            pg_url, _, start, stop = postgres(work)
            phases.append(
                Phase(
                    "PostgreSQL",
                    pg_url,
                    [
                        (PHASE_SECONDS * 0.25, "kill a worker (SIGKILL)", kill_a_worker),
                        (PHASE_SECONDS * 0.40, "PostgreSQL stopped", stop),
                        (PHASE_SECONDS * 0.65, "PostgreSQL started again", start),
                    ],
                )
            )
        else:
            failures.append("PostgreSQL is not installed (scripts/postgres.sh installs it): its phase did not run")
        for phase in phases:
            print(f"phase {phase.name}:", flush=True)
            phase_work = work / phase.name
            phase_work.mkdir()
            figures, problems = run_phase(phase, phase_work)
            results.append(figures)
            failures += [f"{phase.name}: {p}" for p in problems]
            if phase.name == "PostgreSQL":
                stop()  # type: ignore[operator]
    except BaseException:
        failures.append("the soak stopped on an error")
        raise
    finally:
        if failures:  # the server logs, the spool and any refused rows, for a post-mortem
            print(f"work folder kept: {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)
    print()
    for figures in results:
        for key, value in figures.items():
            print(f"  {key:32} {value}")
        print()
    return verdict(failures)


def verdict(failures: list[str]) -> int:
    """Print each failure and PASS or FAIL; the exit status."""
    for failure in failures:
        print(f"FAIL {failure}")
    print("PASS" if not failures else "FAIL")
    return 1 if failures else 0


def stop_server(server: subprocess.Popen[bytes]) -> None:
    """SIGTERM, then SIGKILL when it has not stopped within 30 s."""
    server.send_signal(signal.SIGTERM)
    try:
        server.wait(30)
    except subprocess.TimeoutExpired:
        server.kill()


if __name__ == "__main__":
    sys.exit(main())
