"""The commands operators (`python -m service`) and rule authors (`python -m authoring`) type."""

import os
import shutil
from datetime import UTC, datetime
from pathlib import Path

import pytest

from authoring.__main__ import main as author
from service.__main__ import main
from service.config import PROJECT_ROOT
from tests.helpers import active_ref, new_version


def test_rules_check_passes_on_the_shipped_rules(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["rules", "check"]) == 0
    assert "is valid: 3 rules" in capsys.readouterr().out


def test_rules_check_names_the_problem_and_fails(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    rules = tmp_path / "rules"
    shutil.copytree(PROJECT_ROOT / "rules", rules)
    path = rules / "mscc-suspected/1.0.0.yaml"
    path.write_text(path.read_text().replace("indicator: critical", "indicator: urgent"))
    with pytest.raises(SystemExit) as caught:
        main(["rules", "check", "--rules", str(rules)])
    assert caught.value.code == 1
    assert "rules/mscc-suspected/1.0.0.yaml:47: card.indicator: Input should be" in capsys.readouterr().err


def test_rules_test_reports_counts(capsys: pytest.CaptureFixture[str]) -> None:
    assert author(["rules", "test", "-k", "spinal-metastasis-pain"]) == 0
    assert "0 failed" in capsys.readouterr().out


def test_evaluate_a_file(capsys: pytest.CaptureFixture[str]) -> None:
    bundle = PROJECT_ROOT / "fhir_examples/patients/02-mscc-lung-cancer-cauda-equina-icd10cm.json"
    assert main(["evaluate", str(bundle), "--now", "2026-11-20T09:00:00+00:00"]) == 0
    out = capsys.readouterr().out
    assert f"FIRES  {active_ref('mscc-suspected')}" in out
    assert "card: [critical]" in out


def test_evaluate_refuses_a_bad_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text('{"resourceType": "Patient"}')
    assert main(["evaluate", str(bad)]) == 2
    assert "must be a FHIR Bundle" in capsys.readouterr().err


def test_rules_diff_against_head_runs(capsys: pytest.CaptureFixture[str]) -> None:
    if not (PROJECT_ROOT / ".git").exists():
        pytest.skip("not a git checkout")
    assert author(["rules", "diff"]) == 0
    assert "example patients change clinically against HEAD" in capsys.readouterr().out


def test_serve_refuses_unsafe_configuration(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv("MSCC_DEV_MODE", raising=False)
    with pytest.raises(SystemExit) as caught:
        main(["serve"])
    assert caught.value.code == 2
    assert "MSCC_ISSUERS_FILE" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("env", "said"),
    [
        ({"MSCC_ISSUERS_FILE": "deploy/issuers.example.yaml"}, "issuers[1].jwks: jwks.keys[0] holds placeholder"),
        ({"MSCC_ISSUERS_FILE": "no/such/issuers.yaml"}, "no/such/issuers.yaml: cannot be read"),
        ({"MSCC_CORS_ORIGINS": "https://ehr.example/app"}, "is not an origin"),
        ({"MSCC_TIMEZONE": "Europe/Londres"}, "MSCC_TIMEZONE 'Europe/Londres' is not an IANA time zone"),
        ({"MSCC_DATABASE_URL": "nonsense://x"}, "MSCC_DATABASE_URL is not a database URL"),
        (
            {"MSCC_DATABASE_URL": "postgresql+psycopg://nobody:s3cret@127.0.0.1:1/x"},
            "MSCC_DATABASE_URL: the database cannot be reached or migrated (OperationalError)",
        ),
    ],
    ids=["placeholder-key", "missing-file", "cors-path", "timezone", "database-driver", "database-unreachable"],
)
def test_a_configuration_mistake_stops_serve_with_one_line(
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
    env: dict[str, str],
    said: str,
) -> None:
    monkeypatch.chdir(PROJECT_ROOT)
    issuers = tmp_path / "issuers.yaml"
    issuers.write_text("issuers: []\n")
    monkeypatch.setenv("MSCC_PUBLIC_BASE_URL", "https://cds.example.org")
    monkeypatch.setenv("MSCC_ISSUERS_FILE", str(issuers))
    monkeypatch.delenv("MSCC_DEV_MODE", raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    with pytest.raises(SystemExit) as caught:
        main(["serve"])
    assert caught.value.code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1, err
    assert err.startswith("configuration error: ")
    assert said in err
    assert "s3cret" not in err  # a URL's password never reaches the console


def test_plain_comma_separated_cors_origins_work(monkeypatch: pytest.MonkeyPatch) -> None:
    from service.config import Settings

    monkeypatch.setenv("MSCC_CORS_ORIGINS", "https://sandbox.cds-hooks.org, http://localhost:8080")
    assert Settings(dev_mode=True).cors_origins == ["https://sandbox.cds-hooks.org", "http://localhost:8080"]
    monkeypatch.setenv("MSCC_CORS_ORIGINS", '["https://sandbox.cds-hooks.org"]')
    assert Settings(dev_mode=True).cors_origins == ["https://sandbox.cds-hooks.org"]


def test_rules_diff_shows_a_clinical_change(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Compare the shipped rules with a new version whose MRI window is 1 day: example 16 gets its MRI back. The
    change is made as an author must make it: a new version, the old one retired, a changelog entry, the lock."""
    from authoring import diff

    changed_rules = tmp_path / "rules"
    shutil.copytree(PROJECT_ROOT / "rules", changed_rules)
    new_version(changed_rules, "spinal-metastasis-pain", "active", lambda t: t.replace("P14D", "P1D"))
    assert author(["rules", "lock", "--rules", str(changed_rules)]) == 0
    monkeypatch.setattr(diff, "_ruleset_at", lambda *args: diff.load_ruleset(PROJECT_ROOT / "rules"))
    changes = {c.example: c for c in diff.diff_against_git(changed_rules, "HEAD", PROJECT_ROOT / "fhir_examples")}
    mri_done = changes["16-whole-spine-mri-done-last-week"]
    assert mri_done.changed
    assert "offers spinal-mdt-referral" in mri_done.before.clinical
    assert "offers whole-spine-mri, spinal-mdt-referral" in mri_done.after.clinical
    assert not changes["01-mscc-breast-cancer-leg-weakness"].changed


def test_rules_diff_shows_the_card_for_data_that_could_not_be_read() -> None:
    from authoring import diff
    from service.engine.loader import load_ruleset

    patient = PROJECT_ROOT / "fhir_examples/patients/23-cancer-coded-without-system-and-numbness.json"
    found = diff.outcome(load_ruleset(PROJECT_ROOT / "rules"), patient, datetime(2026, 11, 20, 9, tzinfo=UTC))
    assert found.clinical == "warning: could not read [Condition/p23-cancer]"


def test_serve_migrates_once_then_starts_workers_that_log_json(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import logging

    import uvicorn
    from sqlalchemy import create_engine, inspect
    from uvicorn import _subprocess

    from service.logs import JsonFormatter

    database = tmp_path / "serve.sqlite3"
    monkeypatch.setenv("MSCC_DATABASE_URL", f"sqlite:///{database}")
    seen: dict = {}

    def run(app: str, **options: object) -> None:
        seen.update(app=app, metrics=Path(os.environ["PROMETHEUS_MULTIPROC_DIR"]), **options)
        assert seen["metrics"].is_dir()  # the workers' metrics meet there

    monkeypatch.setattr(uvicorn, "run", run)
    monkeypatch.setattr(_subprocess, "spawn", _subprocess.spawn)  # serve may switch it to fork
    monkeypatch.delenv("PROMETHEUS_MULTIPROC_DIR", raising=False)
    try:
        assert main(["serve", "--dev", "--workers", "2"]) == 0
    finally:
        os.environ.pop("PROMETHEUS_MULTIPROC_DIR", None)  # set by serve, not by monkeypatch: undo it by hand
    assert not seen["metrics"].exists()  # removed when serve stops
    assert seen["app"] == "service.app:serve_app"  # the service alone: no author tooling in production
    assert seen["factory"] is True
    assert seen["workers"] == 2
    assert "seen_tokens" in inspect(create_engine(f"sqlite:///{database}")).get_table_names()  # migrated already
    root = logging.getLogger()
    root.handlers[:] = []
    from service.app import serve_app as factory

    app = factory()  # what each worker runs: JSON logs of its own, no second migration
    assert isinstance(root.handlers[0].formatter, JsonFormatter)
    assert not [r for r in app.routes if getattr(r, "path", "").startswith("/workbench")]


def test_serve_names_a_folder_it_cannot_write_at_start(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """A journal folder on a read-only root (here: under a file) is one warning naming its setting; serve goes on."""
    import uvicorn

    blocked = tmp_path / "a-file"
    blocked.write_text("")
    monkeypatch.setenv("MSCC_DATABASE_URL", f"sqlite:///{tmp_path / 'serve.sqlite3'}")
    monkeypatch.setenv("MSCC_SPOOL_DIR", str(blocked / "journal"))
    monkeypatch.setattr(uvicorn, "run", lambda app, **options: None)
    monkeypatch.setattr("service.logs.configure_logging", lambda level: None)  # keep pytest's capture
    assert main(["serve", "--dev"]) == 0
    warned = [r for r in caplog.records if "cannot be written" in r.getMessage()]
    assert [r.fields for r in warned] == [{"setting": "MSCC_SPOOL_DIR", "folder": str(blocked / "journal")}]  # type: ignore[attr-defined]


def test_the_workbench_runs_the_service_in_development_mode_only(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`python -m authoring workbench` (make workbench): the service with the workbench, always in development mode; its
    factory refuses production settings, so the author tooling can never be served to an EHR."""
    import uvicorn

    from authoring.workbench import workbench_app

    monkeypatch.setenv("MSCC_DATABASE_URL", f"sqlite:///{tmp_path / 'wb.sqlite3'}")
    monkeypatch.delenv("MSCC_DEV_MODE", raising=False)
    seen: dict = {}
    monkeypatch.setattr(uvicorn, "run", lambda app, **options: seen.update(app=app, dev=os.environ["MSCC_DEV_MODE"]))
    monkeypatch.setattr("service.logs.configure_logging", lambda level: None)
    try:
        assert author(["workbench", "--port", "8123"]) == 0
        assert seen == {"app": "authoring.workbench:workbench_app", "dev": "true"}
        app = workbench_app()
        assert app.url_path_for("index") == "/workbench"
    finally:
        os.environ.pop("MSCC_DEV_MODE", None)  # set by the command, not by monkeypatch
    from tests.jwtkit import BASE_URL, Signer, issuers_file

    monkeypatch.setenv("MSCC_ISSUERS_FILE", str(issuers_file(tmp_path / "issuers.yaml", Signer())))
    monkeypatch.setenv("MSCC_PUBLIC_BASE_URL", BASE_URL)
    with pytest.raises(RuntimeError, match="development mode only"):
        workbench_app()


def test_serve_takes_the_site_folder_and_checks_it_before_starting(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    """`serve --site` (the integration guide's word) sets the workers' MSCC_SITE_DIR; a folder without site.yaml
    stops it before any worker starts."""
    monkeypatch.chdir(PROJECT_ROOT)
    monkeypatch.setenv("MSCC_SITE_DIR", "")  # recorded, so the value serve sets is undone after the test
    monkeypatch.delenv("MSCC_SITE_DIR")
    with pytest.raises(SystemExit) as stopped:
        main(["serve", "--dev", "--site", str(tmp_path), "--port", "1"])
    assert stopped.value.code == 1
    said = capsys.readouterr()
    assert f"{tmp_path}/site.yaml: missing: the site folder needs site.yaml" in said.out + said.err
    assert os.environ["MSCC_SITE_DIR"] == str(tmp_path.resolve())
