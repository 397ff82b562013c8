"""A throwaway PostgreSQL server for the tests, started from the server binaries when they are installed.

CI starts one with scripts/postgres.sh and names it in MSCC_TEST_POSTGRES_URL; on a developer's machine with the
Debian `postgresql` package (or `pg_ctl` on the PATH) `make test` starts its own, so the same tests run everywhere.
The server lives in a temporary folder, listens on 127.0.0.1 on a free port, runs without fsync, and is stopped
and removed when the test session ends. As root it runs as the `postgres` user (PostgreSQL refuses root).
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


def server_binaries() -> Path | None:
    """The folder holding initdb and pg_ctl: the newest Debian install, else whatever the PATH has."""
    debian = sorted(Path("/usr/lib/postgresql").glob("*/bin/pg_ctl"), key=lambda p: int(p.parts[-3]))
    if debian:
        return debian[-1].parent
    found = shutil.which("pg_ctl")
    return Path(found).parent if found and shutil.which("initdb") else None


def free_port() -> int:
    """A loopback port no one listens on now (for a server a test starts)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class PostgresServer:
    """A throwaway server that can be stopped and started again on its port (an outage, for `make scale`)."""

    def __init__(self, binaries: Path) -> None:
        self.binaries = binaries
        self.folder = Path(tempfile.mkdtemp(prefix="mscc-test-pg-"))
        self.as_postgres: list[str] = []
        if os.geteuid() == 0:
            shutil.chown(self.folder, "postgres", "postgres")
            self.as_postgres = ["setpriv", "--reuid=postgres", "--regid=postgres", "--init-groups"]
        self.data, self.port = self.folder / "data", free_port()
        self.url = f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/postgres"

    def _run(self, *args: str, check: bool = True) -> None:
        subprocess.run([*self.as_postgres, *args], check=check, capture_output=True, timeout=60, cwd=self.folder)

    def create(self) -> None:
        self._run(str(self.binaries / "initdb"), "-D", str(self.data), "-A", "trust", "-U", "postgres", "--no-sync")
        self.start()

    def start(self) -> None:
        options = f"-p {self.port} -k {self.folder} -c listen_addresses=127.0.0.1 -c fsync=off -c full_page_writes=off"
        log = str(self.folder / "server.log")
        self._run(str(self.binaries / "pg_ctl"), "-D", str(self.data), "-o", options, "-l", log, "-w", "start")

    def stop(self) -> None:
        self._run(str(self.binaries / "pg_ctl"), "-D", str(self.data), "-m", "immediate", "-w", "stop", check=False)

    def remove(self) -> None:
        self.stop()
        shutil.rmtree(self.folder, ignore_errors=True)


@contextmanager
def throwaway_postgres(binaries: Path) -> Iterator[str]:
    """Start a server; yield its SQLAlchemy URL; stop and remove it."""
    with postgres_server(binaries) as server:
        yield server.url


@contextmanager
def postgres_server(binaries: Path) -> Iterator[PostgresServer]:
    server = PostgresServer(binaries)
    try:
        server.create()
        yield server
    finally:
        server.remove()
