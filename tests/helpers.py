"""Test helpers (not fixtures): where the test data and the examples are, and small FHIR builders.

Fixtures live in `conftest.py`; test modules import helpers from here, never from each other.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from functools import cache
from pathlib import Path
from typing import Any

from service.config import PROJECT_ROOT
from service.engine.ruleset import RuleSet
from service.fhir.codes import ICD10CM, SNOMED
from service.runtime import Runtime
from service.store.db import Store
from service.store.decisionrow import DecisionRecord

EXAMPLES = PROJECT_ROOT / "fhir_examples"
DATA = PROJECT_ROOT / "tests" / "data"  # test data copied in with its provenance: a clone tests itself
CDSHOOKS = DATA / "cdshooks"
REALDATA = EXAMPLES / "realdata"
NOW = datetime(2026, 11, 20, 9, 0, tzinfo=UTC)


def load_json(path: Path) -> Any:
    return json.loads(path.read_text(encoding="utf-8"))


def patient_bundle(name: str) -> dict[str, Any]:
    """An example patient's Bundle from fhir_examples/patients/."""
    bundle: dict[str, Any] = load_json(EXAMPLES / "patients" / f"{name}.json")
    return bundle


def hook_request(name: str) -> dict[str, Any]:
    """An example's complete hook call from fhir_examples/requests/."""
    request: dict[str, Any] = load_json(EXAMPLES / "requests" / f"{name}.json")
    return request


def cond(cid: str, system: str, code: str, date: str = "2026-11-18", **extra: Any) -> dict[str, Any]:
    """A Condition of patient `p`."""
    return {
        "resourceType": "Condition",
        "id": cid,
        "subject": {"reference": "Patient/p"},
        "code": {"coding": [{"system": system, "code": code, "display": cid}]},
        "recordedDate": date,
        **extra,
    }


def obs(oid: str, code: str, date: str, present: bool) -> dict[str, Any]:
    """A SNOMED CT finding of patient `p`, recorded present (True) or absent (False)."""
    return {
        "resourceType": "Observation",
        "id": oid,
        "status": "final",
        "subject": {"reference": "Patient/p"},
        "code": {"coding": [{"system": SNOMED, "code": code}]},
        "effectiveDateTime": date,
        "valueBoolean": present,
    }


CANCER = cond("ca", ICD10CM, "C50.911", "2020-01-01")
PAIN = cond("pain", ICD10CM, "M54.6")


def decision_record(card: str | None = "card", rule: str | None = "r@1.0.0", **changes: Any) -> DecisionRecord:
    """A decision-log row: one rule evaluated, fired with a card when `card` is given."""
    fields: dict[str, Any] = {
        "id": str(uuid.uuid4()),
        "created_at": datetime(2026, 11, 20, 9, tzinfo=UTC),
        "service_id": "mscc-patient-view",
        "hook": "patient-view",
        "hook_instance": str(uuid.uuid4()),
        "patient_hash": "abc",
        "issuer": None,
        "ruleset_revision": "rev",
        "rules_evaluated": [rule] if rule else [],
        "rules_fired": [rule] if card and rule else [],
        "lead_rule": rule if card else None,
        "indicator": "critical" if card else None,
        "card_uuid": card,
        "suggestions": [{"uuid": "s1", "label": "MRI"}] if card else [],
        "evidence": ["Condition/x"],
        "fetched_keys": [],
        "shadow_fired": None,
        "data_ms": 1.0,
        "evaluate_ms": 0.5,
    }
    return DecisionRecord(**{**fields, **changes})


def runtime_of(app: Any) -> Runtime:
    """The app's runtime (rule source, store, spool, hook calls), typed: the one place tests learn where it lives."""
    return Runtime.of(app)


def caught_up_store(app: Any) -> Store:
    """The app's store once its journaled decision rows are written (they reach it in batches, after the answer)."""
    runtime = runtime_of(app)
    runtime.hooks.decisions.flush()
    return runtime.store


def copy_rules(tmp_path: Path) -> Path:
    """A copy of rules/ a test may edit."""
    import shutil

    from service.config import PROJECT_ROOT

    target = tmp_path / "rules"
    shutil.copytree(PROJECT_ROOT / "rules", target)
    return target


def add_score_6_draft(rules: Path) -> Path:
    """A draft of spinal-metastasis-pain above the active version that lowers the pain-score threshold from 7 to 6
    (issue 11's trial); its ref is `score_6_draft_ref()`."""
    new_version(rules, "spinal-metastasis-pain", "draft", lambda text: text.replace("at_least: 7}", "at_least: 6}"))
    return rules


def score_6_draft_ref() -> str:
    return f"spinal-metastasis-pain@{next_minor('spinal-metastasis-pain')}"


# The active version of a rule, as the shipped rules/ say today: tests that mean "the active version" name it
# through these, so a release (`python -m authoring rules release`) needs no test edited.


@cache
def shipped_ruleset() -> RuleSet:
    from service.engine.loader import load_ruleset

    return load_ruleset(PROJECT_ROOT / "rules")


def active_version(rule_id: str) -> str:
    """`4.0.0`: the active version of `rule_id` in the shipped rules/."""
    rule = shipped_ruleset().version(rule_id)
    assert rule is not None, f"{rule_id} has no active version"
    return rule.version


def active_ref(rule_id: str) -> str:
    """`mscc-suspected@4.0.0`."""
    return f"{rule_id}@{active_version(rule_id)}"


def active_file(rule_id: str) -> str:
    """`mscc-suspected/4.0.0.yaml`, relative to rules/."""
    return f"{rule_id}/{active_version(rule_id)}.yaml"


def next_minor(rule_id: str) -> str:
    """A version number above the active one, for a test's new draft (`4.0.0` -> `4.1.0`)."""
    major, minor, _ = (int(p) for p in active_version(rule_id).split("."))
    return f"{major}.{minor + 1}.0"


def new_version(
    rules: Path, rule_id: str, status: str = "draft", change: Callable[[str], str] = lambda text: text
) -> str:
    """Write `next_minor(rule_id)` in `rules` as a copy of the active version with `status` and `change` applied
    (the active one retired when the new one is active), with its changelog entry; return the new version."""
    old, new = active_version(rule_id), next_minor(rule_id)
    folder = rules / rule_id
    released = (folder / f"{old}.yaml").read_text(encoding="utf-8")
    if status == "active":
        (folder / f"{old}.yaml").write_text(released.replace("status: active", "status: retired"), encoding="utf-8")
    text = released.replace(f"version: {old}", f"version: {new}").replace("status: active", f"status: {status}")
    (folder / f"{new}.yaml").write_text(change(text), encoding="utf-8")
    changelog = folder / "CHANGELOG.md"
    changelog.write_text(changelog.read_text(encoding="utf-8") + f"\n## {new}\n\n- a test's change\n", encoding="utf-8")
    return new


def outcome_code(answer: Any) -> str:
    """The service's error code in a CDS Hooks error (an OperationOutcome: `issue[0].details.coding[0].code`)."""
    body = answer.json()
    assert body["resourceType"] == "OperationOutcome", body
    return str(body["issue"][0]["details"]["coding"][0]["code"])


def outcome_message(answer: Any) -> str:
    """The message of a CDS Hooks error (`issue[0].details.text`)."""
    body = answer.json()
    assert body["resourceType"] == "OperationOutcome", body
    return str(body["issue"][0]["details"]["text"])


def outcome_details(answer: Any) -> list[str]:
    """The details of a CDS Hooks error: the diagnostics of every issue after the first."""
    body = answer.json()
    assert body["resourceType"] == "OperationOutcome", body
    return [str(issue["diagnostics"]) for issue in body["issue"][1:]]
