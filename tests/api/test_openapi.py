"""openapi.yaml is the contract: it must equal what the running app serves."""

import yaml
from fastapi.testclient import TestClient

from service.config import PROJECT_ROOT


def test_openapi_yaml_equals_the_served_document(client: TestClient) -> None:
    served = client.get("/openapi.json").json()
    committed = yaml.safe_load((PROJECT_ROOT / "openapi.yaml").read_text(encoding="utf-8"))
    assert served == committed, "openapi.yaml is stale: run `python -m authoring openapi --write`"


def test_every_operation_documents_its_errors(client: TestClient) -> None:
    paths = client.get("/openapi.json").json()["paths"]
    hook_call = paths["/cds-services/{service_id}"]["post"]["responses"]
    assert set(hook_call) == {"200", "400", "401", "404", "412", "413", "415"}
    feedback = paths["/cds-services/{service_id}/feedback"]["post"]["responses"]
    for status, response in [*hook_call.items(), *feedback.items()]:
        if status != "200":  # CDS Hooks 3.0: every error of a CDS endpoint is an OperationOutcome
            assert list(response["content"]) == ["application/fhir+json"], status
            assert response["content"]["application/fhir+json"]["schema"]["$ref"].endswith("/OperationOutcome")
    assert set(paths["/evaluate"]["post"]["responses"]) == {"200", "400", "401", "413", "422", "503"}
    assert "application/fhir+json" in paths["/evaluate"]["post"]["responses"]["422"]["content"]
    assert paths["/cds-services/{service_id}"]["post"]["requestBody"]["content"]["application/json"]["examples"]
