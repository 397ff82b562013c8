"""Fetch what the EHR did not prefetch from its FHIR server: allow-listed servers only, bounded in time and size.

A `next` link is followed only while it stays under the same allow-listed base, redirects are never followed,
and the whole fetch has one deadline: a slow, broken or hostile server costs at most that, and the answer is 412.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any
from urllib.parse import unquote, urlsplit

import httpx

from service.cdshooks.issuers import IssuerRegistry, normalise_base
from service.cdshooks.models import HookRequest
from service.errors import FetchFailed, PreconditionFailed, SearchRefused

MAX_RESPONSE_BYTES = 20_000_000
FHIR_JSON = "application/fhir+json"


class FhirFetcher:
    def __init__(
        self,
        client: httpx.AsyncClient,
        issuers: IssuerRegistry,
        *,
        timeout_seconds: float,
        max_pages: int,
        on_failure: Callable[[str], None] = lambda reason: None,
    ) -> None:
        """`on_failure(reason)` is told of every failed fetch (not_allowed, timeout, unreachable, bad_answer)."""
        self.client = client
        self.issuers = issuers
        self.timeout = timeout_seconds
        self.max_pages = max_pages
        self.fail = on_failure

    async def _get(self, url: str, headers: dict[str, str]) -> dict[str, Any]:
        answer = await self.client.get(url, headers=headers, follow_redirects=False)
        if answer.status_code in (400, 422, 501):
            raise SearchRefused(f"the FHIR server refused the search (HTTP {answer.status_code})")
        if answer.status_code != 200:
            raise FetchFailed(f"the FHIR server answered HTTP {answer.status_code}")
        if len(answer.content) > MAX_RESPONSE_BYTES:
            raise FetchFailed("the FHIR server's answer is too large")
        try:
            body = answer.json()
        except ValueError:
            raise FetchFailed("the FHIR server's answer is not JSON") from None
        if not isinstance(body, dict) or not isinstance(body.get("resourceType"), str):
            raise FetchFailed("the FHIR server's answer is not a FHIR resource")
        if body["resourceType"] == "OperationOutcome":
            raise FetchFailed("the FHIR server answered with an OperationOutcome")
        return body

    async def _search(self, base: str, query: str, headers: dict[str, str]) -> dict[str, Any]:
        body = await self._get(f"{base}/{query.lstrip('/')}", headers)
        if body["resourceType"] != "Bundle":
            return body
        entries = _entries(body)
        for _ in range(self.max_pages - 1):
            next_url = _next_url(body)
            if next_url is None:
                break
            inside = normalise_base(next_url).startswith(base + "/") or next_url.startswith(base + "?")
            if not inside or _has_dot_segments(next_url):
                raise FetchFailed("the FHIR server's next link leaves the allowed server")
            body = await self._get(next_url, headers)
            entries.extend(_entries(body))
        else:
            raise FetchFailed(f"the search needs more than {self.max_pages} pages")
        return {"resourceType": "Bundle", "type": "searchset", "entry": entries}

    async def fetch(self, request: HookRequest, queries: dict[str, str], issuer: str | None) -> dict[str, Any]:
        """Run each query against the request's fhirServer; {key: resource or Bundle}. Raises PreconditionFailed."""
        server = str(request.fhirServer)
        if not self.issuers.fhir_server_allowed(server, issuer):
            self.fail("not_allowed")
            raise PreconditionFailed("the request's fhirServer is not on the allow-list for this caller")
        base = normalise_base(server)
        headers = {"Accept": FHIR_JSON}
        if request.fhirAuthorization is not None:
            headers["Authorization"] = f"Bearer {request.fhirAuthorization.access_token}"
        try:
            async with asyncio.timeout(self.timeout):
                results = await asyncio.gather(
                    *(self._keyed(key, base, q, headers) for key, q in queries.items()), return_exceptions=True
                )
        except TimeoutError:
            self.fail("timeout")
            reason = f"the FHIR server did not answer within {self.timeout:g} s"
            raise FetchFailed(reason, keys=list(queries)) from None
        found: dict[str, Any] = {}
        failures: dict[str, FetchFailed] = {}
        for key, result in zip(queries, results, strict=True):
            if isinstance(result, FetchFailed):
                failures[key] = result
            elif isinstance(result, BaseException):
                raise result
            else:
                found[key] = result
        if not failures:
            return found
        first = next(iter(failures.values()))
        self.fail("unreachable" if isinstance(first.__cause__, httpx.HTTPError) else "bad_answer")
        refused = [k for k, f in failures.items() if isinstance(f, SearchRefused)]
        if refused:  # a filter the server does not support: the caller asks again with the base queries
            raise SearchRefused(failures[refused[0]].message, keys=refused)
        raise FetchFailed(first.message, keys=list(failures), partial=found)

    async def _keyed(self, key: str, base: str, query: str, headers: dict[str, str]) -> dict[str, Any]:
        """One prefetch key's search; a failure names the key (the caller names its search template)."""
        try:
            return await self._search(base, query, headers)
        except httpx.HTTPError as error:
            reason = f"the FHIR server could not be reached ({type(error).__name__})"
            raise FetchFailed(reason, keys=[key]) from error
        except SearchRefused as refused:
            raise SearchRefused(refused.message, keys=[key]) from None
        except FetchFailed as failed:
            raise FetchFailed(failed.message, keys=[key]) from None


def _entries(page: dict[str, Any]) -> list[Any]:
    """A search page's entries. One that is not an array cannot be read, and is never taken for "no data"."""
    entries = page.get("entry")
    if entries is None:
        return []
    if not isinstance(entries, list):
        raise FetchFailed("the FHIR server's Bundle.entry is not an array")
    return entries


def _next_url(page: dict[str, Any]) -> str | None:
    """The page's `next` link, None on the last page. Links that cannot be read are refused: the pages after them
    would be lost in silence."""
    links = page.get("link")
    if links is None:
        return None
    if not isinstance(links, list) or not all(isinstance(link, dict) for link in links):
        raise FetchFailed("the FHIR server's Bundle.link is not an array of objects")
    url = next((link.get("url") for link in links if link.get("relation") == "next"), None)
    if url is not None and not isinstance(url, str):
        raise FetchFailed("the FHIR server's next link has no URL")
    return url


def _has_dot_segments(url: str) -> bool:
    """Whether a URL's path climbs (`..`, also percent-encoded, once or twice, or with backslashes)."""
    path = urlsplit(url).path
    for _ in range(3):
        path = unquote(path)
    return any(segment in ("..", ".") for segment in path.replace("\\", "/").split("/"))
