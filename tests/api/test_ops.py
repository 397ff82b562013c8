from fastapi.testclient import TestClient


def test_health_and_readiness(client: TestClient) -> None:
    health = client.get("/healthz").json()
    assert health["status"] == "ok"
    ready = client.get("/readyz")
    assert ready.status_code == 200
    assert ready.json()["checks"]["rules"] == "ok"
