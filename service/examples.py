"""fhir_examples/: build each CDS Hooks request from its patient Bundle, and its expected response from the service.

Requests carry their evaluation time in an extension (honoured in development mode only) so the examples keep
giving the same answer as the calendar moves on. Card and suggestion uuids come from a seeded factory.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

from service.cdshooks.call import EVALUATION_TIME_EXTENSION
from service.config import PROJECT_ROOT
from service.engine.yamlfile import load_yaml
from service.fhir.bundle import read_patient_bundle

EXAMPLES_DIR = PROJECT_ROOT / "fhir_examples"
_NAMESPACE = uuid.UUID("6f1c2a52-3f0e-4a8e-9d51-6d8a4b3c2e10")
PREFETCH_TYPES = {"conditions": "Condition", "observations": "Observation"}


def manifest(examples_dir: Path = EXAMPLES_DIR) -> dict[str, Any]:
    data: dict[str, Any] = load_yaml(examples_dir / "examples.yaml")
    return data


def seeded_uuids(seed: str) -> Callable[[], str]:
    """A uuid factory that gives the same sequence for the same seed."""
    counter = iter(range(1_000_000))
    return lambda: str(uuid.uuid5(_NAMESPACE, f"{seed}/{next(counter)}"))


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


def build_request(example_id: str, bundle: dict[str, Any], now: str, hook: str = "patient-view") -> dict[str, Any]:
    patient = read_patient_bundle(bundle)
    return {
        "hookInstance": str(uuid.uuid5(_NAMESPACE, example_id)),
        "hook": hook,
        "context": {"userId": "Practitioner/example-clinician", "patientId": patient.patient_id},
        "prefetch": {
            key: _searchset([r for r in patient.resources if r.get("resourceType") == resource_type])
            for key, resource_type in PREFETCH_TYPES.items()
        },
        "extension": {EVALUATION_TIME_EXTENSION: now},
    }


def _write(path: Path, data: Any) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")


def build_all(examples_dir: Path = EXAMPLES_DIR) -> list[Path]:
    """Write requests/ and responses/ for every example; responses come from the service itself."""
    from fastapi.testclient import TestClient

    from service.app import create_app
    from service.config import Settings

    data = manifest(examples_dir)
    app = create_app(Settings(dev_mode=True))
    written = []
    with TestClient(app) as client:
        for example in data["examples"]:
            example_id = example["id"]
            bundle = json.loads((examples_dir / "patients" / f"{example_id}.json").read_text(encoding="utf-8"))
            request = build_request(example_id, bundle, data["now"])
            app.state.runtime.new_uuid = seeded_uuids(example_id)
            answer = client.post("/cds-services/mscc-patient-view", json=request)
            answer.raise_for_status()
            for folder, body in (("requests", request), ("responses", answer.json())):
                path = examples_dir / folder / f"{example_id}.json"
                _write(path, body)
                written.append(path)
    return written
