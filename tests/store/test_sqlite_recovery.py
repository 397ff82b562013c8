"""SQLite recovers by itself: files made read-only and writable again while calls continue (a real child process)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from service.config import PROJECT_ROOT
from tests.helpers import EXAMPLES

# Root ignores file permissions: the child keeps uid 0 but drops the capabilities that override them (util-linux
# setpriv), so a read-only file is read-only to it, as it is to the unprivileged user a real service runs as.
DROP_OVERRIDES = [
    "setpriv",
    "--inh-caps=-dac_override,-dac_read_search",
    "--bounding-set=-dac_override,-dac_read_search",
]


def test_unwritable_files_fail_writes_not_answers_and_storage_comes_back() -> None:
    work = Path(tempfile.mkdtemp(prefix="mscc-readonly-", dir="/tmp"))
    try:
        request = work / "request.json"
        shutil.copy(EXAMPLES / "requests" / "01-mscc-breast-cancer-leg-weakness.json", request)
        prefix = DROP_OVERRIDES if os.geteuid() == 0 else []
        script = PROJECT_ROOT / "tests/store/sqlite_unwritable_child.py"
        child = subprocess.run(
            [*prefix, sys.executable, str(script), str(work), str(request)],
            cwd=PROJECT_ROOT,
            env={**os.environ, "PYTHONPATH": str(PROJECT_ROOT), "MSCC_DEV_MODE": "true"},
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        assert child.returncode == 0, child.stderr[-3000:]
        seen = json.loads(child.stdout.strip().splitlines()[-1])
    finally:
        shutil.rmtree(work, ignore_errors=True)
    assert seen["before"] == 200
    assert seen["during"] == [[200, ["critical"]]] * 3  # decision support went on
    assert seen["ready_during"] == "failing"  # readiness told the truth
    assert seen["spooled"] == 3  # the rows waited on disk
    assert seen["ready_after"] == "ok"  # no read-only connection stayed behind
    assert seen["drained"] == 3
    assert seen["after"] == 200
    assert seen["decisions"] == 5  # nothing acknowledged was lost
