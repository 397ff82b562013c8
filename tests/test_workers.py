"""`serve --workers 2` for real, on loopback: metrics summed over the workers, JSON logs from every process."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx

from service.config import PROJECT_ROOT
from tests.helpers import hook_request


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _children(pid: int) -> dict[int, bytes]:
    """Each child process of `pid`, with its command line."""
    found = {}
    for task in Path(f"/proc/{pid}/task").glob("*/children"):
        for child in task.read_text().split():
            found[int(child)] = Path(f"/proc/{child}/cmdline").read_bytes()
    return found


def test_two_workers_share_one_metrics_view_and_log_json(tmp_path: Path) -> None:
    port = _free_port()
    env = {k: v for k, v in os.environ.items() if k != "PROMETHEUS_MULTIPROC_DIR"}
    env |= {
        "MSCC_DEV_MODE": "true",
        "MSCC_DATABASE_URL": f"sqlite:///{tmp_path / 'w.sqlite3'}",
        "TMPDIR": str(tmp_path),
    }
    server = subprocess.Popen(
        [sys.executable, "-m", "service", "serve", "--port", str(port), "--workers", "2"],
        cwd=PROJECT_ROOT,
        env=env,
        stderr=subprocess.PIPE,
        text=True,
    )
    base = f"http://127.0.0.1:{port}"
    body = hook_request("01-mscc-breast-cancer-leg-weakness")
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"{base}/healthz", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.1)
        calls = 60
        for _ in range(calls):  # a new connection each time: the kernel spreads them over both workers
            answer = httpx.post(f"{base}/cds-services/mscc-patient-view", json=body, timeout=10)
            assert answer.status_code == 200
        scrapes = [httpx.get(f"{base}/metrics", timeout=5).text for _ in range(6)]
        workers = _children(server.pid)
        assert len(list(tmp_path.glob("mscc-metrics-*"))) == 1
    finally:
        server.terminate()
        _, stderr = server.communicate(timeout=30)
    lines = [json.loads(line) for line in stderr.splitlines() if line.strip()]  # every line is JSON
    pids = {line["pid"] for line in lines if line["message"] == "hook answered"}
    assert len(pids) == 2  # both workers answered hook calls ...
    wanted = f'mscc_hook_calls_total{{service="mscc-patient-view",status="200"}} {calls}.0'
    assert all(wanted in text for text in scrapes)  # ... and every scrape counts all of them
    assert pids <= set(workers)
    assert not any(b"spawn_main" in command for command in workers.values())  # forked from the checked parent
    assert not list(tmp_path.glob("mscc-metrics-*"))  # the metrics folder goes with the server
