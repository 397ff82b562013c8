"""The second baseline for HTTP round trips: the parse-only endpoint plus the token check every CDS Hooks service
must make (an RS384/ES384 signature by the issuer's key, then iss, aud, exp, iat and jti), done with joserfc as
its documentation shows. It keeps no replay table and reads nothing in the body: what lies between it and our
service is what a service does with the call."""

import json
import os
import time
from pathlib import Path

import yaml
from fastapi import FastAPI, HTTPException, Request
from joserfc import jws, jwt
from joserfc.errors import JoseError
from joserfc.jwk import KeySet
from joserfc.jwt import JWTClaimsRegistry

_ISSUERS = yaml.safe_load(Path(os.environ["MSCC_ISSUERS_FILE"]).read_text())["issuers"]
_KEYS = {issuer["iss"]: KeySet.import_key_set(issuer["jwks"]) for issuer in _ISSUERS}
_AUDIENCE = os.environ["MSCC_PUBLIC_BASE_URL"].rstrip("/") + "/cds-services/mscc-patient-view"
_ALGORITHMS = ["ES384", "RS384"]

app = FastAPI()


def _unverified_issuer(token: str) -> str:
    """The `iss` claim, read before the signature is checked, to pick the issuer's keys (as a service must)."""
    return str(json.loads(jws.extract_compact(token.encode()).payload)["iss"])


@app.post("/cds-services/mscc-patient-view")
async def parse_and_verify(request: Request) -> dict[str, list[object]]:
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "bearer":
        raise HTTPException(status_code=401)
    try:
        issuer = _unverified_issuer(token)
        verified = jwt.decode(token, _KEYS[issuer], algorithms=_ALGORITHMS)
        JWTClaimsRegistry(
            now=int(time.time()),
            leeway=60,
            iss={"essential": True, "value": issuer},
            aud={"essential": True, "value": _AUDIENCE},
            exp={"essential": True},
            iat={"essential": True},
            jti={"essential": True},
        ).validate(verified.claims)
    except (JoseError, KeyError, IndexError, ValueError) as error:
        raise HTTPException(status_code=401, detail=type(error).__name__) from None
    await request.json()
    return {"cards": []}
