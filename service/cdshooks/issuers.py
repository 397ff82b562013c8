"""The trusted EHRs: who may call us (JWT issuers and their keys) and which FHIR servers we may call back.

Nothing outside this list is ever contacted: a `jku` header or a `fhirServer` not named here is refused.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, cast
from urllib.parse import urlsplit

import yaml
from joserfc.jwk import KeySet
from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, ValidationError, field_validator

from service.errors import ConfigurationError, field_problems, validation_errors

_PRIVATE_MEMBERS = ("d", "p", "q", "dp", "dq", "qi", "k")


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
    tenants: list[str] = Field(
        default_factory=list,
        description="the `tenant` claims this issuer's tokens may carry (CDS Hooks: one EHR serving several "
        "organisations); when listed, a token naming another tenant, or none, is refused",
    )

    _keys: KeySet | None = PrivateAttr(default=None)
    _kids: frozenset[str] = PrivateAttr(default=frozenset())

    @field_validator("jwks")
    @classmethod
    def _public_keys(cls, value: dict[str, Any] | None) -> dict[str, Any] | None:
        """Inline keys are read now: a placeholder or a private key stops start-up instead of refusing every call."""
        if value is None:
            return None
        keys = value.get("keys")
        if not isinstance(keys, list) or not keys:
            raise ValueError("jwks needs a `keys` list with the EHR's public keys")
        for i, key in enumerate(keys):
            if not isinstance(key, dict):
                raise ValueError(f"jwks.keys[{i}] is not a JSON Web Key")
            if any("REPLACE" in str(v).upper() for v in key.values()):
                raise ValueError(f"jwks.keys[{i}] holds placeholder values: paste the EHR's real public key")
            if any(member in key for member in _PRIVATE_MEMBERS):
                raise ValueError(f"jwks.keys[{i}] is a private or secret key: give only the EHR's public key")
            if key.get("kty") not in ("EC", "RSA"):
                raise ValueError(f"jwks.keys[{i}] must be an EC (ES384) or RSA (RS384) key")
        try:
            KeySet.import_key_set(cast(Any, value))
        except Exception as error:  # joserfc raises many kinds (binascii, ValueError, its own)
            raise ValueError(f"jwks is not a valid key set ({type(error).__name__})") from None
        return value

    def model_post_init(self, _: Any) -> None:
        if self.jwks is not None:
            self._keys = KeySet.import_key_set(cast(Any, self.jwks))
            self._kids = frozenset(k.kid for k in self._keys.keys if k.kid is not None)

    @property
    def keys(self) -> KeySet | None:
        """The inline key set, parsed once."""
        return self._keys

    def has_key(self, kid: object) -> bool:
        """Does an inline key have this `kid`? (A set looked up on every call: the keys are read once.)"""
        return isinstance(kid, str) and kid in self._kids

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
        """Read the issuers file; raises ConfigurationError with one line naming the file and the first problem."""
        if path is None:
            return cls([])
        try:
            raw = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
            return cls(IssuersFile.model_validate(raw).issuers)
        except OSError as error:
            raise ConfigurationError(f"MSCC_ISSUERS_FILE {path}: cannot be read ({error.strerror})") from None
        except yaml.YAMLError as error:
            mark = getattr(error, "problem_mark", None)
            where = f" line {mark.line + 1}" if mark is not None else ""
            raise ConfigurationError(f"MSCC_ISSUERS_FILE {path}{where}: not valid YAML") from None
        except ValidationError as error:
            location, message = field_problems(validation_errors(error), fhirpath=True)[0]
            raise ConfigurationError(f"MSCC_ISSUERS_FILE {path}: {location}: {message}") from None

    def get(self, iss: str) -> Issuer | None:
        return self.by_iss.get(iss)

    def fhir_server_allowed(self, fhir_server: str, iss: str | None) -> bool:
        """Allowed for this issuer; without a verified issuer (development mode), allowed for any listed issuer."""
        candidates = [self.by_iss[iss]] if iss in self.by_iss else ([] if iss else list(self.by_iss.values()))
        wanted = normalise_base(fhir_server)
        return any(normalise_base(s) == wanted for issuer in candidates for s in issuer.fhir_servers)
