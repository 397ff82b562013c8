"""The integration guide (docs/integration.md) and the README say what the service does: each command they quote
parses with the real command line, each setting exists, each link resolves, and their tables (services, override
reasons, the checks a 401 is counted by, the prefetch keys) are the running service's."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from authoring.__main__ import command_line as authoring_parser
from service.__main__ import parser as service_parser
from service.config import PROJECT_ROOT, Settings
from service.engine.ruleset import RuleSet

GUIDE = PROJECT_ROOT / "docs" / "integration.md"
DOCS = [GUIDE, PROJECT_ROOT / "README.md"]
PLACEHOLDERS = {
    "<folder>": "deploy/site.example",
    "<the proxy's address>": "10.0.0.1",
    "<service id>": "mscc-patient-view",
    "--host H": "--host 127.0.0.1",
    "--port P": "--port 8080",
    "[--workers N]": "--workers 2",
    "--workers N": "--workers 2",
    "[--dev]": "--dev",
}
NOT_SETTINGS = {"MSCC_REQUIRE_POSTGRES", "MSCC_REQUIRE_CHROMIUM", "MSCC_TEST_POSTGRES_URL"}  # the test suite's


def text_of(path: Path) -> str:
    return path.read_text(encoding="utf-8")


def quoted_commands(path: Path) -> list[str]:
    """`python -m service ...` and `python -m authoring ...` as the document writes them (code spans, blocks)."""
    text = text_of(path).replace("\\\n", " ")
    found = re.findall(r"python -m (?:service|authoring)[^`\n|)&;]*", text)
    return sorted({c.split(" > ")[0].strip() for c in found})  # not the shell's redirection


def table_rows(text: str, header: str) -> list[list[str]]:
    """The rows of the markdown table whose header line starts with `header`."""
    lines = text.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith(header))
    rows = []
    for line in lines[start + 2 :]:
        if not line.startswith("|"):
            break
        rows.append([cell.strip().strip("`") for cell in line.strip("|").split("|")])
    return rows


@pytest.mark.parametrize("path", DOCS, ids=lambda p: p.name)
def test_every_quoted_command_parses_with_the_real_command_line(path: Path) -> None:
    commands = quoted_commands(path)
    assert commands
    for command in commands:
        for placeholder, value in PLACEHOLDERS.items():
            command = command.replace(placeholder, value)
        words = shlex.split(command)[2:]  # after `python -m`
        program, argv = words[0], words[1:]
        if not argv or argv[-1] in ("...", "…"):
            continue
        chosen = service_parser() if program == "service" else authoring_parser()
        if len(argv) == 1 and argv[0] in ("token", "rules", "examples"):
            continue  # a command group named in a sentence ("`python -m authoring token` writes ...")
        try:
            chosen.parse_args(argv)
        except SystemExit as stopped:
            pytest.fail(f"{path.name}: `{command}` does not parse (exit {stopped.code})")


@pytest.mark.parametrize("path", DOCS, ids=lambda p: p.name)
def test_every_setting_named_is_a_setting(path: Path) -> None:
    named = set(re.findall(r"\bMSCC_[A-Z][A-Z_]*[A-Z]\b", text_of(path))) - NOT_SETTINGS
    known = {f"MSCC_{name.upper()}" for name in Settings.model_fields}
    assert sorted(named - known) == []


@pytest.mark.parametrize("path", DOCS, ids=lambda p: p.name)
def test_every_relative_link_resolves(path: Path) -> None:
    links = re.findall(r"\]\(([^)#\s]+)(?:#[^)]*)?\)", text_of(path))
    local = [link for link in links if not re.match(r"^[a-z]+:", link)]
    assert local
    missing = [link for link in local if not (path.parent / link).exists()]
    assert missing == []


def test_the_services_table_is_discovery(client: TestClient) -> None:
    rows = table_rows(text_of(GUIDE), "| service id | hook |")
    services = client.get("/cds-services").json()["services"]
    assert [(r[0], r[1]) for r in rows] == [(s["id"], s["hook"]) for s in services]


def test_the_override_reasons_table_is_the_rule_sets(ruleset: RuleSet) -> None:
    rows = table_rows(text_of(GUIDE), "| offered code | display |")
    reasons = ruleset.config.override_reasons
    assert [(r[0], r[1], r[2]) for r in rows] == [(r.category, r.display, code) for code, r in reasons.items()]


def test_the_checks_a_401_is_counted_by_are_the_services() -> None:
    """The guide lists the metric label's fixed words; each is one the JWT checks raise, and each they raise is
    listed (the operator token of /metrics and /reports is another matter)."""
    guide = text_of(GUIDE)
    listed = set(re.search(r"counts it by a fixed word \(([^)]*)\)", guide.replace("\n", " ")).group(1).split(", "))
    listed = {word.strip("`") for word in listed}
    raised = set()
    for source in (PROJECT_ROOT / "service" / "cdshooks").rglob("*.py"):
        raised |= set(re.findall(r'reason="([a-z_]+)"', text_of(source)))
    assert listed == raised


def test_the_prefetch_keys_named_are_discoverys_and_the_optional_ones_are_optional(
    client: TestClient, ruleset: RuleSet
) -> None:
    guide = text_of(GUIDE).replace("\n", " ")
    discovery = {s["id"]: s for s in client.get("/cds-services").json()["services"]}
    keys = set(discovery["mscc-patient-view"]["prefetch"])
    for key in ("observations", "observations_coded", "observations_laboratory", "patient", "imaging_reports"):
        assert f"`{key}`" in guide
        assert key in keys
    said = re.search(r"`patient`, `imaging_orders`, (.*?) are optional", guide)
    assert said is not None
    optional = {"patient", "imaging_orders", *re.findall(r"`([a-z_]+)`", said.group(1))}
    planned, _ = ruleset.prefetch_plan["mscc-patient-view"]
    assert optional == set(planned.optional_prefetch)
