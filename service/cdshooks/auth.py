"""JWT verification for CDS Hooks 2.0 calls (spec "Trusting CDS Clients", and the security best practices).

Checked, in order: a Bearer token is present; `alg` is ES384 or RS384 (never `none` or HMAC); `iss` is a trusted
issuer; the key comes from that issuer's inline JWKS, its JWKS URL, or a `jku` on its allow-list; the signature;
`aud` is this service's URL; `exp` is in the future, `iat` not in the future; the `tenant` is one the issuer lists
(when it lists any); `jti` is present and not seen before within the token's lifetime. Every refusal is an
`Unauthorized` whose message says which check failed (for the log) and whose `reason` is a fixed word (for the
metric); the caller gets a bare 401 (`api/security.py`).
"""

from __future__ import annotations

import hashlib
import json
import re
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import lru_cache
from typing import Any
from urllib.parse import urlsplit

from cachetools import TTLCache
from joserfc import jws
from joserfc.errors import BadSignatureError, JoseError
from joserfc.jwk import KeySet
from joserfc.jwt import JWTClaimsRegistry

from service.cdshooks.issuers import IssuerRegistry, normalise_base
from service.cdshooks.jwks import JwksCache
from service.errors import Unauthorized

ALGORITHMS = ["ES384", "RS384"]
LEEWAY_SECONDS = 60
MAX_LIFETIME_SECONDS = 3600


@dataclass(frozen=True)
class VerifiedCaller:
    iss: str
    sub: str | None
    tenant: str | None
    jti: str


# (token id, expiry) -> False when the id was seen before; shared storage makes replay checks span replicas.
RememberToken = Callable[[str, datetime], Awaitable[bool]]


class JwtVerifier:
    def __init__(
        self,
        issuers: IssuerRegistry,
        jwks: JwksCache,
        public_base_url: str,
        clock: Any = time.time,
        remember: RememberToken | None = None,
    ) -> None:
        self.issuers = issuers
        self.jwks = jwks
        self.base = public_base_url.rstrip("/")
        self.clock = clock
        self.remember = remember
        self._seen_jti: TTLCache[str, bool] = TTLCache(maxsize=200_000, ttl=MAX_LIFETIME_SECONDS + LEEWAY_SECONDS)
        self._audience_cache: dict[tuple[str, bool], tuple[list[str], frozenset[str]]] = {}

    def audience(self, service_id: str) -> str:
        return f"{self.base}/cds-services/{service_id}"

    async def _keys(self, header: dict[str, Any], iss: str) -> KeySet:
        """Keys given out of band win: a configured key with the token's `kid` is used and nothing is fetched.
        Otherwise a `jku` is fetched only when it is on the issuer's allow-list (its configured spelling)."""
        issuer = self.issuers.get(iss)
        if issuer is None:
            raise Unauthorized(f"the token's issuer {_shown(iss)} is not in MSCC_ISSUERS_FILE", reason="unknown_issuer")
        kid = header.get("kid")
        jku = header.get("jku")
        if issuer.keys is not None and (issuer.has_key(kid) or (kid is None and jku is None)):
            return issuer.keys
        if jku is not None:
            allowed = {normalise_base(u): u for u in issuer.allowed_jku}
            configured = allowed.get(normalise_base(jku)) if isinstance(jku, str) else None
            if configured is None:
                raise Unauthorized(
                    f"no key configured for issuer {_shown(iss)} has the token's kid {_shown(kid)}, and the token's "
                    f"jku {_shown(jku)} is not on the issuer's allowed_jku list",
                    reason="unknown_key",
                )
            # The configured URL is fetched, never the token's spelling of it: a query string or other variation
            # added by a caller cannot make us fetch again, nor grow the cache.
            return await self.jwks.keys(configured, kid=kid)
        if issuer.jwks_url:
            return await self.jwks.keys(issuer.jwks_url, kid=kid)
        if issuer.keys is not None:
            raise Unauthorized(
                f"no key configured for issuer {_shown(iss)} has the token's kid {_shown(kid)}", reason="unknown_key"
            )
        raise Unauthorized(f"no keys are configured for issuer {_shown(iss)}", reason="unknown_key")

    def _audiences(self, service_id: str, feedback: bool) -> tuple[list[str], frozenset[str]]:
        """The audiences a token may name for this service, spelled out and compared (worked out once)."""
        known = self._audience_cache.get((service_id, feedback))
        if known is None:
            expected = [self.audience(service_id)] + ([f"{self.audience(service_id)}/feedback"] if feedback else [])
            known = (expected, frozenset(_same_url(e) for e in expected))
            if len(self._audience_cache) < 1000:  # service ids come from requests: never an unbounded cache
                self._audience_cache[(service_id, feedback)] = known
        return known

    def _check_audience(self, claims: dict[str, Any], service_id: str, feedback: bool) -> None:
        """`aud` must name this service's URL; a trailing or doubled slash (a discovery URL registered with a
        trailing slash) does not matter. The refusal says which audience was expected."""
        expected, wanted = self._audiences(service_id, feedback)
        given = claims.get("aud")
        values = given if isinstance(given, list) else [given]
        if not any(isinstance(v, str) and _same_url(v) in wanted for v in values):
            raise Unauthorized(
                f"the token's aud {_shown(given)} is not this service: expected {expected[0]} "
                "(MSCC_PUBLIC_BASE_URL + /cds-services/<service id>)",
                reason="audience",
            )

    def _check_tenant(self, claims: dict[str, Any]) -> None:
        """An issuer that lists its tenants vouches for those only: a token naming another tenant, or none, is refused
        (one EHR vendor's key would otherwise speak for every organisation it hosts)."""
        issuer = self.issuers.get(claims["iss"])
        if issuer is None or not issuer.tenants:
            return
        tenant = claims.get("tenant")
        if not isinstance(tenant, str) or tenant not in issuer.tenants:
            raise Unauthorized(
                f"the token's tenant {_shown(tenant)} is not one of the issuer's tenants in MSCC_ISSUERS_FILE",
                reason="tenant",
            )

    async def verify(self, authorization: str | None, service_id: str, *, feedback: bool = False) -> VerifiedCaller:
        """Verify the call's JWT. A feedback call may be signed for the service URL or its /feedback URL."""
        scheme, _, token = (authorization or "").strip().partition(" ")
        token = token.strip()
        if scheme.lower() != "bearer" or not token:  # auth schemes are case-insensitive (RFC 9110)
            raise Unauthorized("a Bearer JWT is required in the Authorization header", reason="missing_token")
        try:
            unverified = jws.extract_compact(token.encode())
            header = dict(unverified.protected)
            claims = json.loads(unverified.payload)
        except (JoseError, ValueError):
            raise Unauthorized("the token is not a compact JWS", reason="malformed_token") from None
        if header.get("alg") not in ALGORITHMS:
            raise Unauthorized("the token's alg must be ES384 or RS384", reason="algorithm")
        if "crit" in header:  # RFC 7515 4.1.11: extensions the recipient does not understand make the token invalid
            raise Unauthorized(
                "the token's crit header names extensions this service does not support", reason="malformed_token"
            )
        if not isinstance(claims, dict) or not isinstance(claims.get("iss"), str):
            raise Unauthorized("the token has no iss claim", reason="claims")
        keys = await self._keys(header, claims["iss"])
        try:  # the signature of the very bytes read above: the token is parsed once
            if not jws.validate_compact(unverified, keys, algorithms=ALGORITHMS):
                raise BadSignatureError()
        except JoseError as error:
            raise Unauthorized(f"the token's signature does not verify ({error.error})", reason="signature") from None
        now = int(self.clock())
        self._check_audience(claims, service_id, feedback)
        registry = JWTClaimsRegistry(
            now=now,
            leeway=LEEWAY_SECONDS,
            iss={"essential": True},
            exp={"essential": True},
            iat={"essential": True},
            jti={"essential": True},
        )
        try:
            registry.validate(claims)
        except JoseError as error:
            raise Unauthorized(
                f"the token's claims are not acceptable ({error.error}: {error.description})", reason="claims"
            ) from None
        if int(claims["exp"]) - now > MAX_LIFETIME_SECONDS:
            raise Unauthorized("the token lives too long (over an hour)", reason="claims")
        self._check_tenant(claims)
        jti_key = f"{claims['iss']}|{claims['jti']}"
        if jti_key in self._seen_jti:
            raise Unauthorized("the token's jti was already used", reason="replayed")
        self._seen_jti[jti_key] = True
        expires = datetime.fromtimestamp(int(claims["exp"]) + LEEWAY_SECONDS, UTC)
        if self.remember is not None and not await self.remember(_token_key(jti_key), expires):
            raise Unauthorized("the token's jti was already used", reason="replayed")
        return VerifiedCaller(claims["iss"], claims.get("sub"), claims.get("tenant"), jti_key)


def _shown(value: object) -> str:
    """A token's header or claim value, quoted and cut short, for a refusal message (never patient data)."""
    text = json.dumps(value, ensure_ascii=True)
    return text if len(text) <= 120 else text[:117] + "..."


@lru_cache(maxsize=256)  # a token's `aud` is one of a few spellings: worked out once each
def _same_url(url: str) -> str:
    """A URL compared without a trailing slash or doubled slashes in its path."""
    parts = urlsplit(url.strip())
    path = re.sub("/{2,}", "/", parts.path).rstrip("/")
    return f"{parts.scheme.lower()}://{parts.netloc.lower()}{path}"


def _token_key(jti_key: str) -> str:
    """A fixed-size key for the shared replay table: two long jtis never collide by a common prefix, and a jti
    with a lone surrogate (valid JSON, not valid UTF-8) is still stored."""
    return hashlib.sha256(jti_key.encode("utf-8", "surrogatepass")).hexdigest()
