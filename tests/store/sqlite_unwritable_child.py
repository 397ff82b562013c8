"""Run by tests/store/test_sqlite_recovery.py in a child process (as an unprivileged user, so file permissions
hold): hook calls while the SQLite files are made read-only, then writable again. Prints what it saw as JSON."""

from __future__ import annotations

import json
import sys
from pathlib import Path

from fastapi.testclient import TestClient

from service.app import create_app
from service.config import Settings
from service.runtime import Runtime

URL = "/cds-services/mscc-patient-view"


def main(work: Path, request_file: Path) -> dict[str, object]:
    db_dir, spool = work / "db", work / "spool"
    db_dir.mkdir()
    settings = Settings(
        dev_mode=True, database_url=f"sqlite:///{db_dir / 's.sqlite3'}", spool_dir=spool, spool_drain_seconds=300
    )
    body = json.loads(request_file.read_text())
    seen: dict[str, object] = {}
    with TestClient(create_app(settings)) as client:
        runtime = Runtime.of(client.app)
        seen["before"] = client.post(URL, json=body).status_code
        runtime.hooks.decisions.flush()
        for path in db_dir.iterdir():
            path.chmod(0o444)
        db_dir.chmod(0o555)
        runtime.store.engine.dispose()  # every connection from here on is opened while the files are read-only
        during = [client.post(URL, json=body) for _ in range(3)]
        seen["during"] = [(r.status_code, [c["indicator"] for c in r.json()["cards"]]) for r in during]
        seen["ready_during"] = client.get("/readyz").json()["checks"]["database"]
        runtime.hooks.decisions.flush()  # storage refuses the batch: the rows stay on disk
        seen["spooled"] = runtime.spool.pending()
        db_dir.chmod(0o755)
        for path in db_dir.iterdir():
            path.chmod(0o644)
        seen["ready_after"] = client.get("/readyz").json()["checks"]["database"]
        seen["drained"] = runtime.spool.drain(runtime.store)
        seen["after"] = client.post(URL, json=body).status_code
        runtime.hooks.decisions.flush()
        seen["decisions"] = runtime.store.count()["decisions"]
    return seen


if __name__ == "__main__":
    print(json.dumps(main(Path(sys.argv[1]), Path(sys.argv[2]))))
