"""Signing test JWTs the way an EHR does (ES384 or RS384), and writing an issuers file that trusts them."""

from __future__ import annotations

import time
import uuid
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import yaml
from joserfc import jwt
from joserfc.jwk import ECKey, RSAKey
from joserfc.jws import JWSRegistry
from joserfc.util import json_b64encode, urlsafe_b64encode

ISS = "https://ehr.example.org"
BASE_URL = "https://cds.example.org"


class Signer:
    def __init__(self, kid: str = "ehr-key-1", kind: str = "EC") -> None:
        if kind == "EC":
            self.key: Any = ECKey.generate_key("P-384", parameters={"kid": kid}, private=True)
            self.alg = "ES384"
        else:
            self.key = RSAKey.generate_key(2048, parameters={"kid": kid}, private=True)
            self.alg = "RS384"
        self.kid = kid

    def jwks(self) -> dict[str, Any]:
        return {"keys": [self.key.as_dict(private=False)]}

    def token(self, service_id: str = "mscc-patient-view", **overrides: Any) -> str:
        now = int(time.time())
        header: dict[str, Any] = {"alg": self.alg, "typ": "JWT", "kid": self.kid, **overrides.pop("header", {})}
        claims: dict[str, Any] = {
            "iss": ISS,
            "aud": f"{BASE_URL}/cds-services/{service_id}",
            "exp": now + 300,
            "iat": now,
            "jti": str(uuid.uuid4()),
            **overrides,
        }
        claims = {k: v for k, v in claims.items() if v is not None}
        return jwt.encode(header, claims, self.key, algorithms=[self.alg])

    def raw_token(self, header: dict[str, Any], claims: dict[str, Any]) -> str:
        """A token signed as given, with a header the library would refuse to write (a `kid` that is a number, a
        `crit` that is not an array): what a broken or hostile client can send."""
        signing_input = f"{json_b64encode(header).decode()}.{json_b64encode(claims).decode()}".encode()
        algorithm = JWSRegistry(algorithms=[self.alg]).get_alg(self.alg)
        return f"{signing_input.decode()}.{urlsafe_b64encode(algorithm.sign(signing_input, self.key)).decode()}"

    def claims(self, service_id: str = "mscc-patient-view") -> dict[str, Any]:
        now = int(time.time())
        aud = f"{BASE_URL}/cds-services/{service_id}"
        return {"iss": ISS, "aud": aud, "exp": now + 300, "iat": now, "jti": str(uuid.uuid4())}


def issuers_file(
    path: Path,
    signer: Signer,
    *,
    fhir_servers: Sequence[str] = (),
    jku: Sequence[str] = (),
    inline: bool = True,
    jwks_url: str | None = None,
    tenants: Sequence[str] = (),
) -> Path:
    issuer: dict[str, Any] = {"iss": ISS, "fhir_servers": list(fhir_servers), "allowed_jku": list(jku)}
    if tenants:
        issuer["tenants"] = list(tenants)
    if inline:
        issuer["jwks"] = signer.jwks()
    if jwks_url:
        issuer["jwks_url"] = jwks_url
    path.write_text(yaml.safe_dump({"issuers": [issuer]}))
    return path


def _sign_batch(job: tuple[dict[str, Any], int, str]) -> list[str]:
    """Tokens as an EHR signs them, each with its own jti (in a pool process: signing is the slow part)."""
    from joserfc.jwk import RSAKey

    key_dict, count, service_id = job
    key = RSAKey.import_key(key_dict)
    now = int(time.time())
    claims = {"iss": ISS, "aud": f"{BASE_URL}/cds-services/{service_id}", "iat": now, "exp": now + 900}
    header = {"alg": "RS384", "typ": "JWT", "kid": key_dict["kid"]}
    return [jwt.encode(header, {**claims, "jti": str(uuid.uuid4())}, key, algorithms=["RS384"]) for _ in range(count)]


def sign_many(signer: Signer, count: int, service_id: str = "mscc-patient-view") -> list[str]:
    """`count` RS384 tokens for one service, signed in a process pool (the bench and `make scale` need thousands)."""
    import multiprocessing
    import os

    key = signer.key.as_dict(private=True)
    chunks = [(key, count // 8 + 1, service_id)] * 8
    with multiprocessing.get_context("spawn").Pool(os.cpu_count() or 2) as pool:
        return [t for batch in pool.map(_sign_batch, chunks) for t in batch][:count]
