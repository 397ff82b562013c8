"""Storage-fault and flood suite (`make faults`): no worker dies, cards keep coming, everything recovers by itself.

Loopback only, bounded in time (about 2 minutes), root needed (it mounts a tmpfs and sets `chattr +i`). Runs
`python -m service serve --workers 2` in production mode (signed JWTs: the host replay table is written on every
call) with its whole data folder (SQLite file, decision journal, replay table) on a small tmpfs of its own, and
clients that send hook calls and feedback throughout. Each fault is held for FAULT_SECONDS, then undone:
- the disk full (a filler file takes every free block);
- every file and folder made immutable (`chattr +i`);
- the replay table and the journal files deleted;
- the replay table cut to nothing.
It counts worker deaths (must be none), hook answers inside each fault (must be some, and no 5xx), and checks
afterwards that the service recovered: /readyz durable again, every answered card's decision row stored or counted
as lost (`mscc_decision_log_failures`), every acknowledged feedback stored.

Then the flood phase: hook throughput with and without a flood of 50,000-entry Bundles on /evaluate (sent with the
operator token: the worst case), in alternating windows; the drop must be at most 10%.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import orjson
from sqlalchemy import create_engine, text

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "scripts"))

from soak import CLIENTS, SERVICE, Tally, client_loop, free_port, stop_server, verdict, wait_for, workers_of  # noqa: E402

from tests.helpers import hook_request, patient_bundle  # noqa: E402
from tests.jwtkit import BASE_URL, Signer, issuers_file  # noqa: E402

FAULT_SECONDS = float(os.environ.get("FAULTS_HOLD_SECONDS", "8"))
WINDOW_SECONDS = float(os.environ.get("FAULTS_WINDOW_SECONDS", "10"))
WINDOWS = int(os.environ.get("FAULTS_WINDOWS", "3"))
MAX_DROP = 0.10
TMPFS_SIZE = "48m"
OPERATOR_TOKEN = "faults-operator-token-0123456789"  # noqa: S105 - a throwaway server on loopback


def start_server(work: Path, data: Path, signer: Signer, port: int) -> subprocess.Popen[bytes]:
    env = {k: v for k, v in os.environ.items() if k not in ("PROMETHEUS_MULTIPROC_DIR", "MSCC_DEV_MODE")}
    env |= {
        "MSCC_ISSUERS_FILE": str(issuers_file(work / "issuers.yaml", signer)),
        "MSCC_PUBLIC_BASE_URL": BASE_URL,
        "MSCC_DATABASE_URL": f"sqlite:///{data / 'mscc.sqlite3'}",
        "MSCC_SPOOL_DRAIN_SECONDS": "1",
        "MSCC_LOG_LEVEL": "WARNING",
        "MSCC_OPERATOR_TOKEN": OPERATOR_TOKEN,
    }
    command = [sys.executable, "-m", "service", "serve", "--port", str(port), "--workers", "2"]
    log = (work / "server.log").open("w")
    return subprocess.Popen(command, cwd=ROOT, env=env, stdout=log, stderr=log)


class WorkerWatch(threading.Thread):
    """Every worker pid the server ever had: a worker that died was replaced by a new pid."""

    def __init__(self, server: subprocess.Popen[bytes]) -> None:
        super().__init__(daemon=True)
        self.server = server
        self.seen: set[int] = set()
        self.stop = threading.Event()

    def run(self) -> None:
        while not self.stop.is_set():
            with contextlib.suppress(OSError):
                self.seen.update(workers_of(self.server))
            time.sleep(0.05)

    @property
    def deaths(self) -> int:
        return max(0, len(self.seen) - 2)


def chattr(flag: str, folder: Path) -> None:
    paths = [str(p) for p in sorted(folder.rglob("*"), reverse=True)] + [str(folder)]
    subprocess.run(["chattr", flag, *paths], check=False, capture_output=True)


def fill(folder: Path) -> None:
    with (folder / "filler").open("wb") as handle:
        try:
            while True:
                handle.write(b"\0" * (1 << 20))
                handle.flush()
        except OSError:
            pass


def delete_files(folder: Path) -> None:
    for path in [*folder.glob("*.replay"), *folder.glob("*.spool/decisions-*.jsonl")]:
        path.unlink(missing_ok=True)


def truncate_replay(folder: Path) -> None:
    for path in folder.glob("*.replay"):
        os.truncate(path, 0)


FAULTS: list[tuple[str, Callable[[Path], None], Callable[[Path], None]]] = [
    ("disk full", fill, lambda folder: (folder / "filler").unlink()),
    ("files and folders immutable (chattr +i)", lambda f: chattr("+i", f), lambda f: chattr("-i", f)),
    ("replay table and journal files deleted", delete_files, lambda _f: None),
    ("replay table truncated", truncate_replay, lambda _f: None),
]


def storage_phase(work: Path) -> tuple[list[str], list[str]]:
    data = work / "data"
    data.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={TMPFS_SIZE}", "tmpfs", str(data)], check=True)
    signer = Signer()
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    server = start_server(work, data, signer, port)
    problems: list[str] = []
    lines: list[str] = []
    tally = Tally()
    watch = WorkerWatch(server)
    try:
        if not wait_for(lambda: httpx.get(f"{base}/readyz", timeout=1).status_code == 200, 30):
            return ["the service did not become ready"], lines
        watch.start()
        stop = threading.Event()
        hook_times: list[float] = []  # hook-only clients: a feedback call waiting on a full disk does not slow them
        clients = [threading.Thread(target=client_loop, args=(base, signer, stop, tally)) for _ in range(CLIENTS // 2)]
        clients += [threading.Thread(target=hook_loop, args=(base, signer, stop, hook_times)) for _ in range(2)]
        for thread in clients:
            thread.start()
        time.sleep(3)
        for name, cause, undo in FAULTS:
            started = time.monotonic()
            cause(data)
            time.sleep(FAULT_SECONDS)
            answered = sum(1 for at in list(hook_times) + list(tally.answered_at) if at >= started)
            undo(data)
            lines.append(
                f"{name:44} {answered:6} cards answered in {FAULT_SECONDS:.0f} s, deaths so far {watch.deaths}"
            )
            if answered == 0:
                problems.append(f"{name}: no card answered while the fault held")
            time.sleep(FAULT_SECONDS)  # recovery before the next fault
        stop.set()
        for thread in clients:
            thread.join(30)
        headers = {"Authorization": f"Bearer {OPERATOR_TOKEN}"}

        def recovered() -> bool:
            ready = httpx.get(f"{base}/readyz", timeout=2).json()
            checks = ready.get("checks", {})
            return bool(ready["status"] == "ok" and checks.get("decisionSpool") == "0 rows waiting")

        if not wait_for(recovered, 60):
            problems.append(f"not recovered within 60 s: {httpx.get(f'{base}/readyz', timeout=2).text}")
        metrics = httpx.get(f"{base}/metrics", headers=headers, timeout=5).text
        lost = sum(
            float(line.split()[-1])
            for line in metrics.splitlines()
            if line.startswith("mscc_decision_log_failures_total")
        )
    finally:
        watch.stop.set()
        stop_server(server)
    engine = create_engine(f"sqlite:///{data / 'mscc.sqlite3'}")
    with engine.connect() as connection:
        decided = {row[0] for row in connection.execute(text("SELECT card_uuid FROM decisions"))}
        stored = {row[0] for row in connection.execute(text("SELECT card_uuid FROM feedback"))}
    engine.dispose()
    subprocess.run(["umount", str(data)], check=False)
    missing = [card for card in tally.cards if card not in decided]
    unstored = [card for card in tally.acknowledged if card not in stored]
    server_errors = sum(n for status, n in tally.hooks.items() if status.startswith("5"))
    if watch.deaths:
        problems.append(f"{watch.deaths} worker deaths")
    if server_errors:
        problems.append(f"{server_errors} hook calls answered 5xx")
    if len(missing) > lost:
        problems.append(f"{len(missing)} answered cards have no decision row, but only {lost:.0f} were counted lost")
    if unstored:
        problems.append(f"{len(unstored)} acknowledged feedback items are not stored")
    lines += [
        f"hook answers                                  {dict(sorted(tally.hooks.items()))}",
        f"feedback answers                              {dict(sorted(tally.feedback.items()))}",
        f"worker deaths                                 {watch.deaths}",
        f"answered cards without a row / counted lost   {len(missing)} / {lost:.0f}",
        f"feedback acknowledged / not stored            {len(tally.acknowledged)} / {len(unstored)}",
    ]
    return problems, lines


def hook_loop(base: str, signer: Signer, stop: threading.Event, counts: list[float]) -> None:
    """Keep-alive hook calls as fast as they are answered; the time of each 200 goes into `counts`."""
    body = orjson.dumps(
        {k: v for k, v in hook_request("01-mscc-breast-cancer-leg-weakness").items() if k != "extension"}
    )
    with httpx.Client(base_url=base, timeout=15) as client:
        while not stop.is_set():
            headers = {"Authorization": f"Bearer {signer.token()}", "Content-Type": "application/json"}
            try:
                if client.post(f"/cds-services/{SERVICE}", content=body, headers=headers).status_code == 200:
                    counts.append(time.monotonic())
            except httpx.HTTPError:
                pass


def flood(base: str, body: bytes, seconds: float, clients: int) -> dict[int, int]:
    """A flood of /evaluate calls from its own process (the load generator's threads would otherwise share one GIL
    with the hook clients and slow them, whatever the server does). Each client obeys Retry-After, as the
    workbench and any well-behaved tool do."""
    answers: dict[int, int] = {}
    stop = time.monotonic() + seconds
    headers = {"Authorization": f"Bearer {OPERATOR_TOKEN}", "Content-Type": "application/json"}

    def loop() -> None:
        with httpx.Client(base_url=base, timeout=30) as client:
            while time.monotonic() < stop:
                try:
                    answer = client.post("/evaluate", content=body, headers=headers)
                    status, wait = answer.status_code, float(answer.headers.get("retry-after", "0"))
                except httpx.HTTPError:
                    status, wait = 0, 0.0
                answers[status] = answers.get(status, 0) + 1
                time.sleep(min(wait, max(0.0, stop - time.monotonic())))

    threads = [threading.Thread(target=loop) for _ in range(clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return answers


def flood_phase(work: Path) -> tuple[list[str], list[str]]:
    signer = Signer()
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    (work / "flood").mkdir()
    server = start_server(work / "flood", work / "flood", signer, port)
    bundle = patient_bundle("09-no-cancer-low-back-pain-only")
    filler = {"resource": {"resourceType": "Basic", "id": "x"}}
    bundle["entry"] = bundle["entry"] + [filler] * 50_000
    body = orjson.dumps(bundle)
    counts: list[float] = []
    answers: dict[int, int] = {}
    rates: dict[str, list[float]] = {"hooks alone": [], "hooks under the flood": []}
    pool = multiprocessing.get_context("spawn").Pool(1)
    try:
        if not wait_for(lambda: httpx.get(f"{base}/readyz", timeout=1).status_code == 200, 30):
            return ["the service did not become ready"], []
        stop = threading.Event()
        hooks = [threading.Thread(target=hook_loop, args=(base, signer, stop, counts)) for _ in range(CLIENTS)]
        for thread in hooks:
            thread.start()
        time.sleep(3)  # warm
        for _ in range(WINDOWS):
            for under_flood in (False, True):
                flooding = pool.apply_async(flood, (base, body, WINDOW_SECONDS, 4)) if under_flood else None
                started = time.monotonic()
                time.sleep(WINDOW_SECONDS)
                done = sum(1 for at in list(counts) if at >= started and at < started + WINDOW_SECONDS)
                rates["hooks under the flood" if under_flood else "hooks alone"].append(done / WINDOW_SECONDS)
                if flooding is not None:
                    for status, n in flooding.get(60).items():
                        answers[status] = answers.get(status, 0) + n
                time.sleep(1)
        stop.set()
        for thread in hooks:
            thread.join(30)
    finally:
        pool.terminate()
        stop_server(server)
    alone = statistics.median(rates["hooks alone"])
    flooded = statistics.median(rates["hooks under the flood"])
    drop = 1 - flooded / alone
    each = {name: [round(r) for r in found] for name, found in rates.items()}
    lines = [
        f"hook calls/s alone (median of {WINDOWS} windows)      {alone:8.1f}  {each['hooks alone']}",
        f"hook calls/s under the flood (median)            {flooded:8.1f}  {each['hooks under the flood']}",
        f"throughput drop                                  {drop:8.1%}  (at most {MAX_DROP:.0%})",
        f"/evaluate answers to the flood ({len(body) / 1e6:.1f} MB each)  {dict(sorted(answers.items()))}",
    ]
    problems = [f"hook throughput fell {drop:.1%} under the /evaluate flood"] if drop > MAX_DROP else []
    return problems, lines


def main() -> int:
    if os.geteuid() != 0 or shutil.which("chattr") is None:
        print("make faults needs root (it mounts a tmpfs and sets chattr +i) and chattr (e2fsprogs)")
        return 2
    work = Path(tempfile.mkdtemp(prefix="mscc-faults-"))
    failures: list[str] = []
    print(f"faults: serve --workers 2, production mode, {CLIENTS} clients, each fault held {FAULT_SECONDS:.0f} s")
    try:
        for name, phase in (("storage faults", storage_phase), ("/evaluate flood", flood_phase)):
            print(f"\nphase {name}:", flush=True)
            problems, lines = phase(work)
            for line in lines:
                print(f"  {line}", flush=True)
            failures += [f"{name}: {p}" for p in problems]
    finally:
        subprocess.run(["umount", str(work / "data")], check=False, capture_output=True)
        if failures:
            print(f"work folder kept: {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)
    print()
    return verdict(failures)


if __name__ == "__main__":
    sys.exit(main())
