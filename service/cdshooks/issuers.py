"""The trusted EHRs: who may call us (JWT issuers and their keys) and which FHIR servers we may call back.

Nothing outside this list is ever contacted: a `jku` header or a `fhirServer` not named here is refused.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import yaml
from pydantic import BaseModel, ConfigDict, Field, field_validator


def normalise_base(url: str) -> str:
    """Compare URLs by scheme, host, port and path, without a trailing slash or case differences in the host."""
    parts = urlsplit(url.strip())
    return f"{parts.scheme.lower()}://{parts.netloc.lower()}{parts.path.rstrip('/')}"


class Issuer(BaseModel):
    model_config = ConfigDict(extra="forbid")

    iss: str = Field(min_length=1, description="the JWT `iss` this EHR signs with")
    jwks: dict[str, Any] | None = Field(default=None, description="the EHR's public keys, inline")
    jwks_url: str | None = Field(default=None, description="where to fetch the EHR's public keys")
    allowed_jku: list[str] = Field(default_factory=list, description="JWKS URLs a token's `jku` may name")
    fhir_servers: list[str] = Field(default_factory=list, description="FHIR base URLs we may fetch from")

    @field_validator("jwks_url", "allowed_jku", "fhir_servers")
    @classmethod
    def _https_or_loopback(cls, value: Any) -> Any:
        for url in [value] if isinstance(value, str) else value or []:
            parts = urlsplit(url)
            loopback = parts.hostname in ("127.0.0.1", "localhost", "::1")
            if parts.scheme != "https" and not (parts.scheme == "http" and loopback):
                raise ValueError(f"{url!r} must be https (http only on loopback, for tests)")
        return value


class IssuersFile(BaseModel):
    model_config = ConfigDict(extra="forbid")
    issuers: list[Issuer]


class IssuerRegistry:
    def __init__(self, issuers: list[Issuer]) -> None:
        self.by_iss = {i.iss: i for i in issuers}

    @classmethod
    def load(cls, path: Path | None) -> IssuerRegistry:
        if path is None:
            return cls([])
        raw = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        return cls(IssuersFile.model_validate(raw).issuers)

    def get(self, iss: str) -> Issuer | None:
        return self.by_iss.get(iss)

    def fhir_server_allowed(self, fhir_server: str, iss: str | None) -> bool:
        """Allowed for this issuer; without a verified issuer (development mode), allowed for any listed issuer."""
        candidates = [self.by_iss[iss]] if iss in self.by_iss else ([] if iss else list(self.by_iss.values()))
        wanted = normalise_base(fhir_server)
        return any(normalise_base(s) == wanted for issuer in candidates for s in issuer.fhir_servers)
