"""JWT verification as CDS Hooks asks: every refusal is a bare 401; the log line says which check failed and the
metric labels it."""

import logging
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import text

from service.runtime import system_clock
from tests.fhirserver import Behaviour, running_fhir_server
from tests.helpers import CDSHOOKS, NOW, hook_request, load_json, runtime_of
from tests.jwtkit import BASE_URL, ISS, Signer, issuers_file

URL = "/cds-services/mscc-patient-view"


@pytest.fixture
def secure_client(make_app):
    """`secure_client(issuers, **settings)`: production mode (JWT checked) on the real clock, as tokens expire."""

    def build(issuers: Path, **settings: object) -> TestClient:
        app = make_app(clock=system_clock, dev_mode=False, issuers_file=issuers, public_base_url=BASE_URL, **settings)
        return TestClient(app)

    return build


@pytest.fixture
def signer() -> Signer:
    return Signer()


@pytest.fixture
def client(secure_client, tmp_path: Path, signer: Signer) -> TestClient:
    with secure_client(issuers_file(tmp_path / "issuers.yaml", signer)) as test_client:
        yield test_client


class _Refusals(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.reasons: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        if record.getMessage() == "call refused":
            self.reasons.append(record.fields["reason"])  # type: ignore[attr-defined]


def call(client: TestClient, token: str | None, body: dict | None = None) -> tuple[int, str]:
    """(status, the logged reason of a refusal: the caller is told nothing of it)."""
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    refusals = _Refusals()
    logger = logging.getLogger("service.hooks")
    logger.addHandler(refusals)
    try:
        answer = client.post(URL, json=body or hook_request("09-no-cancer-low-back-pain-only"), headers=headers)
    finally:
        logger.removeHandler(refusals)
    if answer.status_code == 401:
        assert answer.json()["issue"][0]["details"]["text"] == "the request could not be authenticated"
        return answer.status_code, refusals.reasons[-1]
    return answer.status_code, ""


def test_a_valid_token_is_accepted(client: TestClient, signer: Signer) -> None:
    assert call(client, signer.token())[0] == 200


def test_rs384_is_accepted_too(secure_client, tmp_path: Path) -> None:
    rsa = Signer(kind="RSA")
    with secure_client(issuers_file(tmp_path / "i.yaml", rsa)) as client:
        assert call(client, rsa.token())[0] == 200


@pytest.mark.parametrize(
    ("make_token", "reason"),
    [
        (lambda s: None, "a Bearer JWT is required"),
        (lambda s: "not.a.jwt", "not a compact JWS"),
        (lambda s: s.token(aud=f"{BASE_URL}/cds-services/another-service"), "aud"),
        (lambda s: s.token(aud="https://evil.example/cds-services/mscc-patient-view"), "aud"),
        (lambda s: s.token(exp=int(NOW.timestamp()) - 3600 * 24 * 365), "expired"),
        (lambda s: s.token(iat=2_000_000_000_0), "issued in the future"),
        (lambda s: s.token(jti=None), "jti"),
        (lambda s: s.token(iss="https://unknown.example"), '"https://unknown.example" is not in MSCC_ISSUERS_FILE'),
        (
            lambda s: Signer(kid="another-key").token(header={"jku": "https://evil.example/jwks.json"}),
            'jku "https://evil.example/jwks.json" is not on the issuer\'s allowed_jku list',
        ),
        (lambda s: Signer(kid="ehr-key-1").token(), "signature does not verify"),
        (lambda s: s.token(exp=2_000_000_000_0), "lives too long"),
    ],
    ids=[
        "missing",
        "garbage",
        "other-service-aud",
        "other-host-aud",
        "expired",
        "future-iat",
        "no-jti",
        "unknown-issuer",
        "jku-not-allowed",
        "wrong-key",
        "too-long",
    ],
)
def test_bad_tokens_are_401_with_the_reason(client: TestClient, signer: Signer, make_token, reason: str) -> None:
    status, message = call(client, make_token(signer))
    assert status == 401
    assert reason in message


def test_alg_none_and_hmac_are_refused(client: TestClient, signer: Signer) -> None:
    import base64
    import json

    def b64(data: dict) -> str:
        return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()

    unsigned = f"{b64({'alg': 'none', 'typ': 'JWT'})}.{b64({'iss': ISS})}."
    assert call(client, unsigned) == (401, "the token's alg must be ES384 or RS384")
    hmac = f"{b64({'alg': 'HS256', 'typ': 'JWT'})}.{b64({'iss': ISS})}.c2ln"
    assert call(client, hmac)[0] == 401


def test_a_hand_signed_token_is_accepted_so_the_odd_header_tests_below_mean_something(
    client: TestClient, signer: Signer
) -> None:
    assert call(client, signer.raw_token({"alg": signer.alg, "kid": signer.kid}, signer.claims()))[0] == 200


@pytest.mark.parametrize("field", ["crit", "kid", "jku", "typ", "x5u", "cty"])
@pytest.mark.parametrize("value", [5, [1], {"a": 1}, None, 1.5, True, ["exp"]], ids=repr)
def test_a_header_field_of_any_type_is_a_401_or_accepted_never_a_500(
    client: TestClient, signer: Signer, field: str, value: object
) -> None:
    """Seen: a `crit` that is not an array of strings raised a TypeError in the JOSE library (a 500)."""
    header = {"alg": signer.alg, "kid": signer.kid, field: value}
    status, message = call(client, signer.raw_token(header, signer.claims()))
    assert status in (200, 401), message
    if field == "crit":  # RFC 7515 4.1.11: no extension is understood here, so any crit makes the token invalid
        assert (status, message) == (401, "the token's crit header names extensions this service does not support")


def test_a_replayed_jti_is_refused(client: TestClient, signer: Signer) -> None:
    token = signer.token()
    assert call(client, token)[0] == 200
    assert call(client, token) == (401, "the token's jti was already used")


def test_401_carries_www_authenticate(client: TestClient) -> None:
    answer = client.post(URL, json=hook_request("09-no-cancer-low-back-pain-only"))
    assert answer.headers["www-authenticate"].startswith("Bearer")


def test_keys_from_an_allow_listed_jku_are_fetched_and_cached(secure_client, tmp_path: Path, signer: Signer) -> None:
    with running_fhir_server(Behaviour(jwks=signer.jwks())) as (base, behaviour):
        jku = f"{base}/jwks.json"
        issuers = issuers_file(tmp_path / "i.yaml", signer, jku=[jku], inline=False, jwks_url=jku)
        with secure_client(issuers) as client:
            assert call(client, signer.token(header={"jku": jku}))[0] == 200
            assert call(client, signer.token(header={"jku": jku}))[0] == 200
            assert call(client, signer.token())[0] == 200  # jwks_url, the same cached set
        assert [s["path"] for s in behaviour.seen] == ["/jwks.json"]


def test_a_jku_with_a_query_string_added_fetches_the_configured_url_once(
    secure_client, tmp_path: Path, signer: Signer
) -> None:
    with running_fhir_server(Behaviour(jwks=signer.jwks())) as (base, behaviour):
        jku = f"{base}/jwks.json"
        issuers = issuers_file(tmp_path / "i.yaml", signer, jku=[jku], inline=False)
        with secure_client(issuers) as client:
            for n in range(20):
                assert call(client, signer.token(header={"jku": f"{jku}?n={n}"}))[0] == 200
            assert len(runtime_of(client.app).verifier.jwks._entries) == 1
        assert [s["path"] for s in behaviour.seen] == ["/jwks.json"]  # the configured URL, once


def test_an_allowed_jku_serving_an_empty_key_set_is_a_401_fetched_once(
    secure_client, tmp_path: Path, signer: Signer
) -> None:
    with running_fhir_server(Behaviour(jwks={"keys": []})) as (base, behaviour):
        jku = f"{base}/jwks.json"
        issuers = issuers_file(tmp_path / "i.yaml", signer, jku=[jku], inline=False)
        with secure_client(issuers) as client:
            answers = [call(client, signer.token(header={"jku": jku})) for _ in range(30)]
        assert {status for status, _ in answers} == {401}
        assert "not a valid key set" in answers[0][1]
        assert [s["path"] for s in behaviour.seen] == ["/jwks.json"]


def test_unknown_kid_refreshes_the_cached_key_set_once(secure_client, tmp_path: Path, signer: Signer) -> None:
    rotated = Signer(kid="ehr-key-2")
    with running_fhir_server(Behaviour(jwks=signer.jwks())) as (base, behaviour):
        issuers = issuers_file(tmp_path / "i.yaml", signer, inline=False, jwks_url=f"{base}/jwks.json")
        with secure_client(issuers) as client:
            assert call(client, signer.token())[0] == 200
            behaviour.jwks = {"keys": signer.jwks()["keys"] + rotated.jwks()["keys"]}
            runtime_of(client.app).verifier.jwks._entries[f"{base}/jwks.json"].fetched_at -= 60
            assert call(client, rotated.token())[0] == 200
            assert call(client, Signer(kid="made-up").token())[0] == 401  # no refetch storm within 30 s
        assert len(behaviour.seen) == 2


def spec_verifier(clock: float):
    import httpx

    from service.cdshooks.auth import JwtVerifier
    from service.cdshooks.issuers import Issuer, IssuerRegistry
    from service.cdshooks.jwks import JwksCache

    vector = load_json(CDSHOOKS / "spec-2.0.1" / "examples" / "jwt-test-vector-from-spec.json")
    jku = vector["header"]["jku"]

    def serve(request: httpx.Request) -> httpx.Response:
        assert str(request.url) == jku, "only the allow-listed jku may be fetched"
        return httpx.Response(200, json=vector["public_jwks"])

    registry = IssuerRegistry([Issuer(iss=vector["payload"]["iss"], allowed_jku=[jku])])
    client = httpx.AsyncClient(transport=httpx.MockTransport(serve))
    return JwtVerifier(registry, JwksCache(client), "https://cds.example.org", clock=lambda: clock), vector


def test_the_spec_test_vector_is_refused_as_expired() -> None:
    import asyncio

    from service.errors import Unauthorized

    verifier, vector = spec_verifier(clock=NOW.timestamp())
    with pytest.raises(Unauthorized, match="expired"):
        asyncio.run(verifier.verify(f"Bearer {vector['compact_jwt']}", "some-service"))


def test_the_spec_test_vector_passes_every_other_check_in_2015() -> None:
    import asyncio

    vector_time = 1422568860 - 300
    verifier, vector = spec_verifier(clock=vector_time)
    caller = asyncio.run(verifier.verify(f"Bearer {vector['compact_jwt']}", "some-service"))
    assert caller.tenant == "2ddd6c3a-8e9a-44c6-a305-52111ad302a2"
    assert vector_time < vector["payload"]["exp"]


def test_the_spec_test_vector_signature_verifies_and_only_expiry_fails() -> None:
    from joserfc import jwt
    from joserfc.errors import ExpiredTokenError
    from joserfc.jwk import KeySet
    from joserfc.jwt import JWTClaimsRegistry

    vector = load_json(CDSHOOKS / "spec-2.0.1" / "examples" / "jwt-test-vector-from-spec.json")
    token = jwt.decode(vector["compact_jwt"], KeySet.import_key_set(vector["public_jwks"]), algorithms=["ES384"])
    with pytest.raises(ExpiredTokenError):
        JWTClaimsRegistry(leeway=60).validate(token.claims)


def test_a_replay_is_refused_by_another_replica_sharing_the_database(
    secure_client, tmp_path: Path, signer: Signer
) -> None:
    issuers = issuers_file(tmp_path / "issuers.yaml", signer)
    token = signer.token()
    with secure_client(issuers) as first, secure_client(issuers) as second:
        assert call(first, token)[0] == 200
        assert call(second, token) == (401, "the token's jti was already used")


def test_feedback_needs_a_token_signed_for_the_service_or_its_feedback_url(client: TestClient, signer: Signer) -> None:
    card = client.post(
        URL,
        json=hook_request("01-mscc-breast-cancer-leg-weakness"),
        headers={"Authorization": f"Bearer {signer.token()}"},
    ).json()["cards"][0]
    item = {"card": card["uuid"], "outcome": "overridden", "outcomeTimestamp": "2026-11-20T09:00:00Z"}
    feedback = f"{URL}/feedback"
    assert client.post(feedback, json={"feedback": [item]}).status_code == 401
    for aud in (f"{BASE_URL}{URL}", f"{BASE_URL}{URL}/feedback"):
        answer = client.post(
            feedback, json={"feedback": [item]}, headers={"Authorization": f"Bearer {signer.token(aud=aud)}"}
        )
        assert answer.status_code == 200
    wrong = signer.token(aud=f"{BASE_URL}/cds-services/mscc-order-sign/feedback")
    assert (
        client.post(feedback, json={"feedback": [item]}, headers={"Authorization": f"Bearer {wrong}"}).status_code
        == 401
    )


def test_a_storage_outage_does_not_stop_decision_support(
    secure_client, tmp_path: Path, signer: Signer, monkeypatch
) -> None:
    """With the replay table in the database (replicas on several hosts), the database fails: the call is still
    answered (with its card), the per-process check still refuses a replay, and the fallback is counted."""
    from sqlalchemy.exc import OperationalError

    def down(*args: object) -> bool:
        raise OperationalError("INSERT", {}, Exception("database is down"))

    with secure_client(issuers_file(tmp_path / "issuers.yaml", signer), replay_check="database") as client:
        monkeypatch.setattr(runtime_of(client.app).store, "remember_token", down)
        token = signer.token()
        body = hook_request("01-mscc-breast-cancer-leg-weakness")
        answer = client.post(URL, json=body, headers={"Authorization": f"Bearer {token}"})
        assert answer.status_code == 200
        assert [c["indicator"] for c in answer.json()["cards"]] == ["critical"]
        assert call(client, token, body) == (401, "the token's jti was already used")
        assert 'mscc_replay_check_fallbacks_total{reason="storage"} 1.0' in client.get("/metrics").text


def test_a_replay_is_refused_by_any_worker_on_the_host(secure_client, tmp_path: Path, signer: Signer) -> None:
    """Two apps over one SQLite file are two workers: they share the host replay table, and no database write
    is made for it."""
    issuers = issuers_file(tmp_path / "issuers.yaml", signer)
    token = signer.token()
    with secure_client(issuers) as first, secure_client(issuers) as second:
        assert call(first, token)[0] == 200
        assert call(second, token) == (401, "the token's jti was already used")
        engine = runtime_of(first.app).store.engine
        with engine.connect() as connection:
            assert connection.execute(text("SELECT count(*) FROM seen_tokens")).scalar() == 0


def test_a_full_host_table_falls_back_to_the_database(secure_client, tmp_path: Path, signer: Signer, monkeypatch):
    monkeypatch.setattr("service.cdshooks.replay.DEFAULT_SLOTS", 4)
    monkeypatch.setattr("service.cdshooks.replay.MAX_PROBES", 4)
    with secure_client(issuers_file(tmp_path / "issuers.yaml", signer)) as client:
        tokens = [signer.token() for _ in range(6)]
        assert [call(client, t)[0] for t in tokens] == [200] * 6
        assert [call(client, t)[0] for t in tokens] == [401] * 6  # replays refused (this process remembers too)
        assert 'mscc_replay_check_fallbacks_total{reason="host-table-full"} 2.0' in client.get("/metrics").text


def test_long_jtis_sharing_a_prefix_are_different_tokens(client: TestClient, signer: Signer) -> None:
    prefix = "x" * 450
    assert call(client, signer.token(jti=prefix + "a"))[0] == 200
    assert call(client, signer.token(jti=prefix + "b"))[0] == 200


def test_the_bearer_scheme_is_case_insensitive(client: TestClient, signer: Signer) -> None:
    body = hook_request("09-no-cancer-low-back-pain-only")
    answer = client.post(URL, json=body, headers={"Authorization": f"bearer {signer.token()}"})
    assert answer.status_code == 200


def test_the_order_of_refusals_is_404_then_401_then_400(client: TestClient, signer: Signer) -> None:
    """An unknown service first; then the token, checked before the body is parsed; then the body."""
    malformed = b'{"hook": "patient-view", "hookInstance": '
    headers = {"content-type": "application/json"}
    assert client.post("/cds-services/no-such-service", content=malformed, headers=headers).status_code == 404
    refused = client.post(URL, content=malformed, headers=headers)
    assert refused.status_code == 401
    assert refused.headers["www-authenticate"] == "Bearer"
    with_token = {**headers, "Authorization": f"Bearer {signer.token()}"}
    assert client.post(URL, content=malformed, headers=with_token).status_code == 400


def test_an_unauthenticated_call_never_has_its_body_read(client: TestClient, signer: Signer, monkeypatch) -> None:
    from starlette.requests import Request

    reads: list[str] = []
    original = Request.body

    async def spy(self: Request) -> bytes:
        reads.append(self.url.path)
        return await original(self)

    monkeypatch.setattr(Request, "body", spy)
    assert client.post(URL, json=hook_request("09-no-cancer-low-back-pain-only")).status_code == 401
    assert client.post(f"{URL}/feedback", json={"feedback": []}).status_code == 401
    assert reads == []
    headers = {"Authorization": f"Bearer {signer.token()}"}
    assert client.post(URL, json=hook_request("09-no-cancer-low-back-pain-only"), headers=headers).status_code == 200
    assert set(reads) == {URL}  # the spy does see a body that is read
    assert 'mscc_hook_calls_total{service="mscc-patient-view",status="401"} 1.0' in client.get("/metrics").text


def test_a_configured_key_wins_and_an_unlisted_jku_is_never_contacted(
    secure_client, tmp_path: Path, signer: Signer
) -> None:
    """The CDS Hooks Sandbox always names its own jku; a hospital that pasted the Sandbox's public key (out of
    band) must not need to reach that host. The jku's server here is a loopback listener that must see nothing."""
    with running_fhir_server(Behaviour(jwks=signer.jwks())) as (base, behaviour):
        unlisted = f"{base}/.well-known/jwks.json"
        with secure_client(issuers_file(tmp_path / "i.yaml", signer)) as client:  # inline key, no allowed_jku
            assert call(client, signer.token(header={"jku": unlisted}))[0] == 200
            other_key = Signer(kid="not-configured").token(header={"jku": unlisted})
            status, message = call(client, other_key)
        assert behaviour.seen == []
    assert status == 401
    assert '"not-configured"' in message
    assert "allowed_jku" in message


def test_a_wrong_audience_is_refused_naming_the_audience_expected(client: TestClient, signer: Signer) -> None:
    status, message = call(client, signer.token(aud="https://cds.example.org:8443/cds-services/mscc-patient-view"))
    assert status == 401
    assert f"expected {BASE_URL}/cds-services/mscc-patient-view" in message
    assert "MSCC_PUBLIC_BASE_URL" in message


@pytest.mark.parametrize("suffix", ["/", "//mscc-patient-view"])
def test_a_trailing_or_doubled_slash_in_the_audience_is_harmless(client: TestClient, signer: Signer, suffix) -> None:
    aud = f"{BASE_URL}/cds-services/mscc-patient-view/" if suffix == "/" else f"{BASE_URL}/cds-services{suffix}"
    assert call(client, signer.token(aud=aud))[0] == 200


def test_a_refusal_is_logged_with_its_reason_and_no_patient_data(client: TestClient, signer: Signer, caplog) -> None:
    import logging

    with caplog.at_level(logging.WARNING):
        status, message = call(client, signer.token(aud="https://elsewhere.example/cds-services/mscc-patient-view"))
    assert status == 401
    [refusal] = [r for r in caplog.records if r.getMessage() == "call refused"]
    assert refusal.fields["status"] == 401
    assert refusal.fields["reason"] == message
    assert "p09" not in caplog.text


def test_placeholder_or_private_keys_in_the_issuers_file_stop_start_up(tmp_path: Path, signer: Signer) -> None:
    import yaml

    from service.cdshooks.issuers import IssuerRegistry
    from service.config import PROJECT_ROOT
    from service.errors import ConfigurationError

    with pytest.raises(ConfigurationError, match=r"issuers\[1\]\.jwks: .*placeholder"):
        IssuerRegistry.load(PROJECT_ROOT / "deploy/issuers.example.yaml")  # until the hospital pastes its key
    private = tmp_path / "private.yaml"
    private.write_text(
        yaml.safe_dump({"issuers": [{"iss": "x", "jwks": {"keys": [signer.key.as_dict(private=True)]}}]})
    )
    with pytest.raises(ConfigurationError, match="private or secret key"):
        IssuerRegistry.load(private)
    broken = tmp_path / "broken.yaml"
    broken.write_text("issuers:\n  - iss: x\n   jwks: [\n")
    with pytest.raises(ConfigurationError, match=r"broken.yaml line \d+: not valid YAML"):
        IssuerRegistry.load(broken)


def test_the_sandbox_public_key_loads_as_an_out_of_band_key(tmp_path: Path) -> None:
    import yaml

    from service.cdshooks.issuers import IssuerRegistry

    sandbox = load_json(CDSHOOKS / "sandbox-public-jwks.json")
    path = tmp_path / "issuers.yaml"
    path.write_text(yaml.safe_dump({"issuers": [{"iss": "https://sandbox.cds-hooks.org", "jwks": sandbox}]}))
    issuer = IssuerRegistry.load(path).get("https://sandbox.cds-hooks.org")
    assert issuer is not None
    assert issuer.has_key(sandbox["keys"][0]["kid"])


def test_a_host_table_that_cannot_be_opened_does_not_stop_the_worker(
    secure_client, tmp_path: Path, signer: Signer, database_url: str
) -> None:
    """A worker (re)started while the folder beside the SQLite file refuses the replay table still starts and
    answers; the database table refuses replays meanwhile, and the fallback is counted."""
    Path(database_url.removeprefix("sqlite:///") + ".replay").mkdir()  # a directory where the file should go
    with secure_client(issuers_file(tmp_path / "issuers.yaml", signer)) as client:
        token = signer.token()
        body = hook_request("01-mscc-breast-cancer-leg-weakness")
        answer = client.post(URL, json=body, headers={"Authorization": f"Bearer {token}"})
        assert answer.status_code == 200
        assert [c["indicator"] for c in answer.json()["cards"]] == ["critical"]
        runtime_of(client.app).verifier._seen_jti.clear()  # as another worker
        assert call(client, token, body) == (401, "the token's jti was already used")
        metrics = client.get("/metrics").text
        assert 'mscc_replay_check_fallbacks_total{reason="host-table-unavailable"} 2.0' in metrics


def test_a_401_tells_the_caller_nothing_and_the_metric_names_the_check(client: TestClient, signer: Signer) -> None:
    answer = client.post(
        URL, json=hook_request("09-no-cancer-low-back-pain-only"), headers={"Authorization": "Bearer x"}
    )
    assert answer.status_code == 401
    assert answer.headers["content-type"] == "application/fhir+json"
    [issue] = answer.json()["issue"]
    assert issue["code"] == "login"
    assert issue["details"]["text"] == "the request could not be authenticated"
    assert "JWS" not in answer.text
    assert "diagnostics" not in issue
    assert call(client, signer.token(aud="https://elsewhere.example/x"))[0] == 401
    metrics = client.get("/metrics").text
    assert 'mscc_auth_refusals_total{check="malformed_token",service="mscc-patient-view"} 1.0' in metrics
    assert 'mscc_auth_refusals_total{check="audience",service="mscc-patient-view"} 1.0' in metrics


def test_an_issuer_that_lists_its_tenants_vouches_for_those_only(secure_client, tmp_path: Path) -> None:
    signer = Signer()
    with secure_client(issuers_file(tmp_path / "i.yaml", signer, tenants=["st-mary", "st-luke"])) as client:
        assert call(client, signer.token(tenant="st-luke"))[0] == 200
        assert call(client, signer.token(tenant="elsewhere")) == (
            401,
            "the token's tenant \"elsewhere\" is not one of the issuer's tenants in MSCC_ISSUERS_FILE",
        )
        assert call(client, signer.token())[1].startswith("the token's tenant null")
        assert 'check="tenant"' in client.get("/metrics").text


def test_an_issuer_without_tenants_accepts_any_tenant_claim(client: TestClient, signer: Signer) -> None:
    assert call(client, signer.token(tenant="anyone"))[0] == 200
