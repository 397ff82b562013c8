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
    assert set(paths["/cds-services/{service_id}"]["post"]["responses"]) == {"200", "400", "401", "404", "412", "413"}
    assert set(paths["/evaluate"]["post"]["responses"]) == {"200", "400", "401", "413", "422", "503"}
    assert "application/fhir+json" in paths["/evaluate"]["post"]["responses"]["422"]["content"]
    assert paths["/cds-services/{service_id}"]["post"]["requestBody"]["content"]["application/json"]["examples"]
