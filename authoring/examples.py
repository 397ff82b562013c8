"""fhir_examples/: build each CDS Hooks request from its patient Bundle, and its expected response from the service.

Requests carry their evaluation time in an extension (honoured in development mode only) so the examples keep
giving the same answer as the calendar moves on. Card and suggestion uuids come from a seeded factory.
"""

from __future__ import annotations

import json
import uuid
from pathlib import Path
from typing import Any

from authoring import fhirsearch
from authoring.ruletests import EXAMPLES_DIR
from service.cdshooks.call import EVALUATION_TIME_EXTENSION
from service.cdshooks.prefetch import render_query
from service.engine.model import ServiceEntry
from service.engine.yamlfile import load_yaml
from service.fhir.bundle import read_patient_bundle
from service.runtime import ReseedableUuids, Runtime

_NAMESPACE = uuid.UUID("6f1c2a52-3f0e-4a8e-9d51-6d8a4b3c2e10")
DEFAULT_SERVICE = "mscc-patient-view"


def manifest(examples_dir: Path = EXAMPLES_DIR) -> dict[str, Any]:
    data: dict[str, Any] = load_yaml(examples_dir / "examples.yaml")
    return data


def _searchset(resources: list[dict[str, Any]]) -> dict[str, Any] | None:
    if not resources:
        return None  # the spec's "queried, and there is no data"
    return {
        "resourceType": "Bundle",
        "type": "searchset",
        "total": len(resources),
        "entry": [
            {
                "fullUrl": f"http://example.org/fhir/{r['resourceType']}/{r['id']}",
                "resource": r,
                "search": {"mode": "match"},
            }
            for r in resources
        ],
    }


def build_request(
    example: dict[str, Any], bundle: dict[str, Any], now: str, service: ServiceEntry, examples_dir: Path = EXAMPLES_DIR
) -> dict[str, Any]:
    """The hook call an EHR would send for this example: each prefetch key filled from the patient's Bundle."""
    patient = read_patient_bundle(bundle)
    context: dict[str, Any] = {"userId": "Practitioner/example-clinician", "patientId": patient.patient_id}
    if example.get("encounter"):
        context["encounterId"] = example["encounter"]
    drafts_file = examples_dir / "draft_orders" / f"{example['id']}.json"
    if service.hook in ("order-select", "order-sign"):
        drafts = json.loads(drafts_file.read_text(encoding="utf-8"))
        context["draftOrders"] = drafts
        if service.hook == "order-select":
            refs = [f"{e['resource']['resourceType']}/{e['resource']['id']}" for e in drafts["entry"]]
            context["selections"] = example.get("selections") or refs
    context_file = examples_dir / "contexts" / f"{example['id']}.json"
    if context_file.is_file():  # the rest of the hook's context: appointment-book's Appointments, order-dispatch's
        context.update(json.loads(context_file.read_text(encoding="utf-8")))
    if service.hook == "order-dispatch":
        context.pop("userId", None)  # the hook names no user
    prefetch = {}
    for key, template in service.prefetch.items():
        query = render_query(template, context) or template
        prefetch[key] = _searchset(fhirsearch.search(patient.resources, query, check_patient=False))
    return {
        "hookInstance": str(uuid.uuid5(_NAMESPACE, example["id"])),
        "hook": service.hook,
        "context": context,
        "prefetch": prefetch,
        "extension": {EVALUATION_TIME_EXTENSION: now},
    }


def _write(path: Path, data: Any) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")


def build_all(examples_dir: Path = EXAMPLES_DIR, rules_dir: Path | None = None) -> list[Path]:
    """Write requests/ and responses/ for every example; responses come from the service itself (serving
    `rules_dir`, by default the project's rules/)."""
    from fastapi.testclient import TestClient

    from service.app import create_app
    from service.config import Settings

    data = manifest(examples_dir)
    ids = ReseedableUuids()
    settings = Settings(dev_mode=True, database_url="sqlite://")
    if rules_dir is not None:
        settings = settings.model_copy(update={"rules_dir": rules_dir})
    app = create_app(settings, new_uuid=ids)
    written = []
    with TestClient(app) as client:
        for example in data["examples"]:
            example_id = example["id"]
            bundle = json.loads((examples_dir / "patients" / f"{example_id}.json").read_text(encoding="utf-8"))
            service_id = example.get("service", DEFAULT_SERVICE)
            service = Runtime.of(app).ruleset.service(service_id, minimal_prefetch=True)
            if service is None:
                raise ValueError(f"example {example_id}: no active rule serves {service_id!r} (examples.yaml)")
            request = build_request(example, bundle, data["now"], service, examples_dir)
            ids.reseed(example_id)
            answer = client.post(f"/cds-services/{service.id}", json=request)
            answer.raise_for_status()
            for folder, body in (("requests", request), ("responses", answer.json())):
                path = examples_dir / folder / f"{example_id}.json"
                _write(path, body)
                written.append(path)
    readme = examples_dir / "README.md"
    readme.write_text(readme_text(data), encoding="utf-8")
    written.append(readme)
    return written


def readme_text(data: dict[str, Any]) -> str:
    """fhir_examples/README.md, generated from the manifest so every example has its curl line."""
    now = data["now"].replace("+00:00", "Z")
    lines = [
        "# Example patients and CDS Hooks calls",
        "",
        "<!-- generated by `python -m authoring examples build` from examples.yaml: edit that, not this -->",
        "",
        f"{len(data['examples'])} examples. Each has a patient (`patients/<id>.json`, a FHIR R4 Bundle), the",
        "complete hook call an EHR would send (`requests/<id>.json`, prefetch built from the Bundle; `null` where",
        "there is no data) and the answer the service gives (`responses/<id>.json`). Order-hook examples also have",
        "`draft_orders/<id>.json`, sent as `context.draftOrders`. `examples.yaml` says what a clinician should see;",
        "`tests/test_examples.py` checks every example against it and against the stored response.",
        "",
        "Start the service with `make run` (development mode honours the evaluation time each request carries in",
        '`extension["org.mscc-cds.evaluation-time"]`, so the examples keep their answers as the calendar moves on).',
        "Card and suggestion `uuid`s differ from the stored responses: they are random per call.",
        "",
        "A service in production mode evaluates at its own clock and ignores that extension, so send it an example",
        "moved to today: `python -m authoring examples request <id> --at now` prints the call with every date moved",
        "by whole days, which gives the stored answer (`tests/authoring/test_timeshift.py` checks every example):",
        "",
        "```sh",
        "python -m authoring examples request 04-myeloma-thoracic-pain-score-8 | curl -s -X POST \\",
        "  http://127.0.0.1:8080/cds-services/mscc-patient-view -H 'Content-Type: application/json' \\",
        '  -H "Authorization: Bearer $TOKEN" -d @-      # TOKEN: docs/integration.md, a key pair and a test token',
        "```",
        "",
        "## Hook calls",
        "",
        "```sh",
    ]
    for example in data["examples"]:
        service = example.get("service", DEFAULT_SERVICE)
        lines.append(f"# {example['id']}: {example['title']}")
        lines.append(
            f"curl -s -X POST http://127.0.0.1:8080/cds-services/{service} -H 'Content-Type: application/json' "
            f"-d @fhir_examples/requests/{example['id']}.json"
        )
    lines += ["```", "", "## Plain Bundles with a trace (`POST /evaluate`)", "", "```sh"]
    for example in data["examples"]:
        lines.append(
            f"curl -s -X POST 'http://127.0.0.1:8080/evaluate?now={now}' -H 'Content-Type: application/fhir+json' "
            f"-d @fhir_examples/patients/{example['id']}.json"
        )
    lines += [
        "```",
        "",
        "An invalid resource answers `422` with an `OperationOutcome` naming each problem; add `&strict=false` to",
        "evaluate anyway and see the problems listed under `issues`.",
        "",
        "## Changing an example",
        "",
        "Edit `patients/<id>.json` (and `examples.yaml` for a new example), then rebuild requests, responses and",
        "this file, and read what changed before you commit:",
        "",
        "```sh",
        ".venv/bin/python -m authoring examples build",
        "git diff fhir_examples/",
        "```",
        "",
    ]
    return "\n".join(lines)
