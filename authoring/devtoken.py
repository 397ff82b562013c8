"""Development tokens: act as an EHR against a service in production mode, without an EHR.

`python -m authoring token keygen` writes an ES384 key pair (the private JWK, mode 0600) and prints the issuers-file
entry that trusts its public half; `python -m authoring token sign` prints a JWT signed with it, with the claims
CDS Hooks 2.0 asks for (`iss`, `aud` = the service's URL, `exp` five minutes on, `iat`, a fresh `jti`, `kid` in the
header). For testing only: an EHR signs its own tokens with a key the service never sees.
"""

from __future__ import annotations

import json
import os
import time
import uuid
from pathlib import Path
from typing import Any

import yaml
from joserfc import jwt
from joserfc.jwk import ECKey

ALGORITHM = "ES384"
LIFETIME_SECONDS = 300


def keygen(path: Path, kid: str) -> ECKey:
    """A new P-384 key written to `path` (refusing to overwrite one); only its owner may read it."""
    if path.exists():
        raise FileExistsError(f"{path} exists: sign with it, or choose another --key")
    key = ECKey.generate_key("P-384", parameters={"kid": kid, "alg": ALGORITHM, "use": "sig"}, private=True)
    path.parent.mkdir(parents=True, exist_ok=True)
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(descriptor, "w", encoding="utf-8") as handle:
        json.dump(key.as_dict(private=True), handle)
    return key


def read_key(path: Path) -> ECKey:
    key = ECKey.import_key(json.loads(path.read_text(encoding="utf-8")))
    if not key.is_private:
        raise ValueError(f"{path} holds no private key")
    return key


def issuers_entry(key: ECKey, iss: str, fhir_servers: list[str]) -> str:
    """The issuers-file YAML that trusts this key's public half for `iss`."""
    public = key.as_dict(private=False)
    entry: dict[str, Any] = {"iss": iss, "jwks": {"keys": [public]}, "fhir_servers": fhir_servers}
    return yaml.safe_dump({"issuers": [entry]}, sort_keys=False)


def sign(key: ECKey, iss: str, audience: str, *, now: float | None = None, lifetime: int = LIFETIME_SECONDS) -> str:
    issued = int(time.time() if now is None else now)
    header = {"alg": ALGORITHM, "typ": "JWT", "kid": key.kid}
    claims = {"iss": iss, "aud": audience, "exp": issued + lifetime, "iat": issued, "jti": str(uuid.uuid4())}
    return jwt.encode(header, claims, key, algorithms=[ALGORITHM])


def service_url(base_url: str, service_id: str) -> str:
    """The `aud` the service expects: MSCC_PUBLIC_BASE_URL + /cds-services/<id> (feedback calls use the same)."""
    return f"{base_url.rstrip('/')}/cds-services/{service_id}"
