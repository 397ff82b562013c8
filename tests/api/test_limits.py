from fastapi.testclient import TestClient

from tests.helpers import outcome_code


def test_huge_bodies_are_413_by_header_and_by_stream(make_app) -> None:
    app = make_app(max_body_bytes=2_000)
    with TestClient(app) as client:
        big = b'{"pad": "' + b"x" * 5_000 + b'"}'
        answer = client.post(
            "/cds-services/mscc-patient-view", content=big, headers={"content-type": "application/json"}
        )
        assert answer.status_code == 413
        assert answer.headers["content-type"] == "application/fhir+json"
        assert outcome_code(answer) == "payload_too_large"
        assert answer.json()["issue"][0]["code"] == "too-long"

        def chunks():
            for _ in range(10):
                yield b"x" * 500

        streamed = client.post("/evaluate", content=chunks(), headers={"content-type": "application/json"})
        assert streamed.status_code == 413
