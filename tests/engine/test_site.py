"""A hospital's own codes (MSCC_SITE_DIR) widen the value sets, are validated like the rules, and are visible."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from service.config import PROJECT_ROOT
from service.engine.loader import load_ruleset
from service.errors import RuleSetInvalid
from service.fhir.codes import CPT
from tests.helpers import caught_up_store, hook_request

EXAMPLE_SITE = PROJECT_ROOT / "deploy/site.example"
RULES = PROJECT_ROOT / "rules"


def entry(valueset: str, system: str = "urn:x", concepts: str = "[{code: a, display: A}]") -> str:
    return f"site: X\nvaluesets:\n  {valueset}:\n    - {{system: '{system}', source: local, concepts: {concepts}}}\n"


def site_with(tmp_path: Path, text: str, name: str = "site.yaml") -> Path:
    folder = tmp_path / "site"
    folder.mkdir(exist_ok=True)
    (folder / name).write_text(text, encoding="utf-8")
    return folder


def test_the_example_site_adds_its_codes_and_changes_the_revision(ruleset) -> None:
    with_site = load_ruleset(RULES, EXAMPLE_SITE)
    assert with_site.site is not None
    assert with_site.site.name == "Example General Hospital"
    assert with_site.site.additions == {"spine-imaging-not-whole-spine-mri": 43, "analgesics-rxnorm": 1}
    assert with_site.revision != ruleset.revision
    assert "spine-imaging-not-whole-spine-mri" in with_site.codes.lookup((CPT, "72131"))
    # the shipped rule set is untouched (the parsed value sets are cached and shared)
    assert "spine-imaging-not-whole-spine-mri" not in load_ruleset(RULES).codes.lookup((CPT, "72131"))


def cpt_ct_lumbar_order() -> dict[str, Any]:
    body = hook_request("14-order-sign-lumbar-xray-in-myeloma")
    draft = body["context"]["draftOrders"]["entry"][0]["resource"]
    draft["code"] = {"coding": [{"system": CPT, "code": "72131", "display": "CT lumbar spine without contrast"}]}
    return body


def test_a_cpt_coded_ct_order_gets_the_card_only_with_the_site(make_app) -> None:
    with TestClient(make_app()) as plain:
        assert plain.post("/cds-services/mscc-order-sign", json=cpt_ct_lumbar_order()).json()["cards"] == []
    with TestClient(make_app(site_dir=EXAMPLE_SITE)) as client:
        [card] = client.post("/cds-services/mscc-order-sign", json=cpt_ct_lumbar_order()).json()["cards"]
        assert "CT shows the bone but not the spinal cord" in card["detail"]
        assert card["summary"].startswith("Spine CT ordered")
        site = client.get("/rules").json()["site"]
        assert site["name"] == "Example General Hospital"
        assert site["additions"]["spine-imaging-not-whole-spine-mri"] == 43
        discovery = client.get("/cds-services").json()["services"][0]["extension"]["org.mscc-cds.rules"]
        assert discovery["site"].startswith("Example General Hospital@")
        store = caught_up_store(client.app)
        with store.sessions.begin() as session:
            row = store.decision_by_card(session, card["uuid"])
            assert row.site == discovery["site"]


def test_a_local_formulary_code_is_an_analgesic_with_the_site() -> None:
    ruleset = load_ruleset(RULES, EXAMPLE_SITE)
    assert "analgesics-rxnorm" in ruleset.codes.lookup(("urn:example-general-hospital:formulary", "OXY-5-TAB"))


@pytest.mark.parametrize(
    ("text", "field", "message"),
    [
        (
            entry("no-such-set"),
            "valuesets.no-such-set",
            "no value set 'no-such-set'",
        ),
        (
            entry("cancer", system="ICD10"),
            "valuesets.cancer[0].system",
            "should match pattern",
        ),
        (
            entry("cancer", concepts="[]"),
            "valuesets.cancer[0].concepts",
            "at least 1",
        ),
        ("site: X\nvaluesets: {cancer: [\n", "line", "not valid YAML"),
        ("site: X\nsite: Y\nvaluesets: {}\n", "line", "duplicate key"),
    ],
    ids=["unknown-valueset", "bad-system", "no-concepts", "yaml-syntax", "duplicate-key"],
)
def test_a_broken_site_file_is_refused_naming_file_field_and_problem(tmp_path, text, field, message) -> None:
    folder = site_with(tmp_path, text)
    with pytest.raises(RuleSetInvalid) as refused:
        load_ruleset(RULES, folder)
    [problem] = refused.value.problems
    assert problem.file.endswith("site/site.yaml")
    assert problem.field.startswith(field)
    assert message in problem.problem


def test_a_site_file_with_another_name_is_named_not_ignored(tmp_path) -> None:
    folder = site_with(tmp_path, "site: X\n", name="site.yml")
    with pytest.raises(RuleSetInvalid, match=r"found site\.yml: the file must be named site\.yaml"):
        load_ruleset(RULES, folder)


def test_the_service_refuses_to_start_on_a_broken_site(make_app, tmp_path) -> None:
    folder = site_with(tmp_path, "site: X\nvaluesets: {nope: []}\n")
    with pytest.raises(RuleSetInvalid):
        make_app(site_dir=folder)


def test_the_cli_checks_a_site(capsys) -> None:
    from service.__main__ import main

    assert main(["rules", "check", "--site", str(EXAMPLE_SITE)]) == 0
    assert "site    Example General Hospital@" in capsys.readouterr().out


def test_rules_diff_applies_the_site_to_both_sides(tmp_path) -> None:
    from authoring import diff

    site = tmp_path / "site"
    shutil.copytree(EXAMPLE_SITE, site)
    changes = diff.diff_against_git(RULES, "HEAD", PROJECT_ROOT / "fhir_examples", site)
    assert not any(c.changed for c in changes)
