"""Headless Chromium (Debian's `chromium`) for tests that look at a page as a person would, with no driver: the
DOM after the page's scripts ran (`--dump-dom`) and screenshots. Every host but loopback is unreachable, so a page
that needs a CDN fails here as it would on a hospital network.

Without Chromium these tests are skipped, unless MSCC_REQUIRE_CHROMIUM is set (CI sets it): then they fail.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--hide-scrollbars",
    "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1",  # loopback only: no CDN, no internet
]


def require_chromium() -> str:
    if CHROMIUM is None:
        if os.environ.get("MSCC_REQUIRE_CHROMIUM"):
            pytest.fail("MSCC_REQUIRE_CHROMIUM is set but chromium is not installed")
        pytest.skip("chromium is not installed (apt-get install chromium; .ci/run installs it)")
    return CHROMIUM


def _run(args: list[str], timeout: float = 60) -> subprocess.CompletedProcess[str]:
    with tempfile.TemporaryDirectory(prefix="chromium-") as profile:
        return subprocess.run(
            [require_chromium(), *_FLAGS, f"--user-data-dir={profile}", *args],
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )


def dump_dom(url: str, wait_ms: int = 8000) -> str:
    """The page's DOM once its scripts have run (virtual time: returns as soon as the page is idle)."""
    done = _run([f"--virtual-time-budget={wait_ms}", "--dump-dom", url])
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout


def screenshot(url: str, path: Path, width: int = 1100, height: int = 900, wait_ms: int = 3000) -> Path:
    done = _run([f"--virtual-time-budget={wait_ms}", f"--window-size={width},{height}", f"--screenshot={path}", url])
    assert done.returncode == 0, done.stderr[-2000:]
    assert path.is_file(), done.stderr[-2000:]
    return path
