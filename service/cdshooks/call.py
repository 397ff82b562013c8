"""One hook call, from a parsed request to a CDS Hooks response: context, prefetch, record, rules, card."""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field, replace
from datetime import datetime
from functools import cache
from typing import Any
from zoneinfo import ZoneInfo

from pydantic import ValidationError

from service.cdshooks.cards import CardContext, render_card
from service.cdshooks.deadline import DEADLINE_HOOKS
from service.cdshooks.deadlinehook import check_hook_deadline
from service.cdshooks.display import UTC_ZONE
from service.cdshooks.models import CONTEXT_MODELS, CdsResponse, HookContext, HookRequest
from service.cdshooks.orders import MatchedDraft, considered_drafts, match_drafts
from service.cdshooks.prefetch import Keep, PrefetchResult, Unreadable, read_prefetch, render_query, resources_of
from service.cdshooks.scopes import coverage
from service.engine.evaluation import Evaluation, evaluate_record
from service.engine.model import ServiceEntry
from service.engine.ruleset import RuleSet
from service.errors import BadRequest, FetchFailed, PreconditionFailed, SearchRefused, field_errors
from service.fhir.dates import parse_fhir_time
from service.fhir.record import build_record, read_kind
from service.fhir.validate import InputIssue, ValidateOnce

EVALUATION_TIME_EXTENSION = "org.mscc-cds.evaluation-time"
RESPONSE_EXTENSION = "org.mscc-cds.evaluation"

# (request, {prefetch key: query}) -> {prefetch key: FHIR resource or Bundle}; raises PreconditionFailed.
Fetch = Callable[[HookRequest, dict[str, str]], Awaitable[dict[str, Any]]]


@dataclass(frozen=True)
class CallOptions:
    """The settings a hook call reads (the protocol code never sees the app's container)."""

    strict_fhir: bool = False
    shadow_drafts: bool = False
    allow_clock_override: bool = False
    zone: ZoneInfo = UTC_ZONE  # dates on cards are in the hospital's time zone


@dataclass
class CallOutcome:
    response: CdsResponse
    evaluation: Evaluation
    fetched_keys: list[str] = field(default_factory=list)
    timings_ms: dict[str, float] = field(default_factory=dict)
    issues: list[InputIssue] = field(default_factory=list)  # as in the response's inputIssues

    def set_aside_inputs(self) -> list[str]:
        """`Type: reason` for each input that was not read, for the log line (no ids, no values)."""
        return [
            f"{i.reference.split('/')[0]} {i.location}: {i.message}" for i in self.issues if i.outcome == "set aside"
        ]


def read_context(request: HookRequest) -> HookContext:
    model = CONTEXT_MODELS.get(request.hook)
    if model is None:
        raise BadRequest(f"hook {request.hook!r} is not supported")
    try:
        return model.model_validate(request.context)
    except ValidationError as error:
        raise BadRequest(f"context is not valid for the {request.hook} hook", field_errors(error)) from None


def evaluation_time(options: CallOptions, clock: Callable[[], datetime], request: HookRequest) -> datetime:
    """Now, unless development mode lets an example request carry its own evaluation time."""
    if options.allow_clock_override and request.extension:
        stated = parse_fhir_time(str(request.extension.get(EVALUATION_TIME_EXTENSION, "")))
        if stated is not None:
            return stated.latest
    return clock()


def _draft_order_resources(context: HookContext) -> tuple[list[dict[str, Any]], list[InputIssue]]:
    """The draft orders of an order hook, and the entries that could not be read (named in the answer: an order
    that cannot be read cannot be matched, and the clinician must not take the silence for an all clear)."""
    draft = getattr(context, "draftOrders", None)
    if not isinstance(draft, dict):
        return [], []
    try:
        resources, _, problems = resources_of(draft, "draftOrders")
    except Unreadable as error:
        problems = [error.issue]
        resources = []
    return resources, [replace(p, reference="context.draftOrders") for p in problems]  # not a prefetch key


async def _fetch_or_fall_back(
    request: HookRequest, queries: dict[str, str], bases: dict[str, str], fetch: Fetch
) -> dict[str, Any]:
    """Fetch the keys; when the FHIR server refuses a query the rules narrowed (a filter it does not support:
    HTTP 400), fetch the base queries instead, each base once (two keys narrowed from one base are one fetch).
    A server that is down or slow is not asked twice."""
    try:
        return await fetch(request, queries)
    except SearchRefused:
        if not any(bases.get(k, q) != q for k, q in queries.items()):
            raise
    wide: dict[str, str] = {}
    for key, query in queries.items():
        base = bases.get(key, query)
        if base not in wide.values():
            wide[key] = base
    fetched = await fetch(request, wide)
    return fetched | {k: {"resourceType": "Bundle", "type": "searchset"} for k in queries if k not in wide}


_DEADLINE_INPUTS = frozenset({"Appointment"})


def readable_by_rules(ruleset: RuleSet, also: frozenset[str] = frozenset()) -> Keep:
    """What build_record would read of a raw resource: a validated type whose codes a rule reads (and the types in
    `also`, which a hook reads itself: a deadline hook's Appointments). Applied as the prefetch is read, it keeps
    the rest out of every list (the same test, only earlier)."""
    relevant = ruleset.relevant

    def keep(resource: dict[str, Any]) -> bool:
        if resource.get("resourceType") in also:
            return True
        return read_kind(resource) is not None and relevant(resource)

    return keep


@cache
def _types_under_several_keys(templates: tuple[str, ...]) -> frozenset[str]:
    counts = Counter(t.split("?", 1)[0].split("/", 1)[0] for t in templates)
    return frozenset(kind for kind, n in counts.items() if n > 1)


def _distinct(resources: list[dict[str, Any]], templates: dict[str, str]) -> list[dict[str, Any]]:
    """Each resource once: an EHR that ignores a filter sends a resource under two keys of its type. Two different
    resources with one id are both kept (nothing that could change the answer is dropped). Only types read from
    more than one key (`templates`: the keys read) are looked at."""
    shared = _types_under_several_keys(tuple(templates.values()))
    if not shared:
        return resources
    seen: dict[tuple[str, str], list[dict[str, Any]]] = {}
    kept = []
    for resource in resources:
        kind, rid = resource.get("resourceType"), resource.get("id")
        if isinstance(kind, str) and kind in shared and isinstance(rid, str):
            same = seen.setdefault((kind, rid), [])
            if any(resource == earlier for earlier in same):
                continue
            same.append(resource)
        kept.append(resource)
    return kept


def _token_for_another_patient(request: HookRequest) -> bool:
    """A token restricted to a patient other than the call's is never used (CDS Hooks: `fhirAuthorization.patient`
    names the patient the token is for; data fetched with it would be another patient's)."""
    authorization = request.fhirAuthorization
    if authorization is None or authorization.patient is None:
        return False
    return authorization.patient != request.context.get("patientId")


def _naming_searches(failed: FetchFailed, service: ServiceEntry, required: list[str]) -> PreconditionFailed:
    """The 412 of a failed fetch: which required prefetch keys, and each one's search as discovery offers it (the
    template, never the rendered query: the message is logged, and the query holds the patient's id)."""
    keys = [k for k in failed.keys if k in required] or required
    searches = [f"{k}: {service.prefetch[k]}" for k in keys]
    return PreconditionFailed(f"prefetch keys {keys} could not be fetched from fhirServer: {failed.message}", searches)


async def _complete_prefetch(
    service: ServiceEntry,
    request: HookRequest,
    prefetch: PrefetchResult,
    fetch: Fetch | None,
    bases: dict[str, str],
    keep: Keep,
) -> tuple[list[str], list[str]]:
    """Fetch the keys the EHR did not send. Required keys that stay missing are a 412; optional ones are named
    in the response (`unavailable`) and the rules run without them (the safe side: an MRI is still offered)."""
    if not prefetch.missing:
        return [], []
    required = [k for k in prefetch.missing if k not in service.optional_prefetch]
    queries = {k: render_query(service.prefetch[k], request.context) for k in prefetch.missing}
    unfillable = [k for k, q in queries.items() if q is None]
    if any(k in required for k in unfillable):
        raise PreconditionFailed(f"prefetch keys {unfillable} cannot be filled from the context")
    if fetch is None or request.fhirServer is None:
        if required:
            raise PreconditionFailed(
                f"prefetch keys {required} were not sent and no FHIR server access was given",
                [f"{k}: {service.prefetch[k]}" for k in required],
            )
        return [], list(prefetch.missing)
    if _token_for_another_patient(request):
        if required:
            await fetch(request, {})  # nothing is fetched: a server off the allow-list is still the first refusal
            raise PreconditionFailed(
                f"prefetch keys {required} were not sent, and fhirAuthorization is for another patient than "
                "context.patientId: it is not used",
                [f"{k}: {service.prefetch[k]}" for k in required],
            )
        return [], list(prefetch.missing)
    rendered = {k: q for k, q in queries.items() if q is not None}
    if request.fhirAuthorization is not None:
        covered = coverage(request.fhirAuthorization.scope, rendered)
        uncovered = [k for k in covered.missing if k in required]
        if uncovered:
            await fetch(request, {})  # nothing is fetched: a server off the allow-list is still the first refusal
            raise PreconditionFailed(
                f"prefetch keys {uncovered} were not sent, and fhirAuthorization.scope does not allow fetching them",
                [f"{k}: {service.prefetch[k]} needs {covered.missing[k]}" for k in uncovered],
            )
        rendered = {k: q for k, q in rendered.items() if k not in covered.missing}
        prefetch.problems.extend(
            InputIssue(f"prefetch.{k}", "fhirAuthorization.scope", f"the scope limits this search to {q}", "counted")
            for k, q in covered.narrowed.items()
        )
    wide = {k: b for k in rendered if (b := render_query(bases.get(k, service.prefetch[k]), request.context))}
    try:
        fetched = await _fetch_or_fall_back(request, rendered, wide, fetch)
    except FetchFailed as failed:
        if any(k in required for k in failed.keys) or not failed.partial:
            if required:
                raise _naming_searches(failed, service, required) from None
            return [], list(prefetch.missing)
        fetched = failed.partial  # only optional keys failed: they are named unavailable
    except PreconditionFailed:
        if required:
            raise
        return [], list(prefetch.missing)
    for key, value in fetched.items():
        try:
            resources, aliases, problems = resources_of(value, key, keep)
        except Unreadable as error:
            prefetch.problems.append(error.issue)
            continue
        prefetch.resources.extend(resources)
        prefetch.aliases.update(aliases)
        prefetch.problems.extend(problems)
        prefetch.read.append(key)
    return list(fetched), [k for k in prefetch.missing if k not in fetched]


async def answer_call(
    ruleset: RuleSet,
    service: ServiceEntry,
    request: HookRequest,
    *,
    options: CallOptions,
    clock: Callable[[], datetime],
    new_uuid: Callable[[], str],
    fetch: Fetch | None = None,
) -> CallOutcome:
    started = time.perf_counter()
    if request.hook != service.hook:
        raise BadRequest(f"service {service.id!r} answers the {service.hook} hook, not {request.hook!r}")
    context = read_context(request)
    keep = readable_by_rules(ruleset, also=_DEADLINE_INPUTS if service.hook in DEADLINE_HOOKS else frozenset())
    prefetch = read_prefetch(service.prefetch, request.prefetch, keep)
    bases = ruleset.prefetch_bases.get(service.id, {})
    fetched_keys, unavailable = await _complete_prefetch(service, request, prefetch, fetch, bases, keep)
    data_ready = time.perf_counter()
    drafts, unread_drafts = _draft_order_resources(context)
    validator = ValidateOnce()
    record = build_record(
        context.patientId,
        [*_distinct(prefetch.resources, {k: service.prefetch[k] for k in prefetch.read}), *drafts],
        patient_aliases=prefetch.aliases,
        relevant=ruleset.relevant,
        validator=validator,
        encounter_id=context.encounterId,
        text=ruleset.text_path,
    )
    if options.strict_fhir and record.issues:
        listing = [f"{i.reference} {i.location}: {i.message}" for i in record.issues]
        raise BadRequest("the prefetch holds invalid FHIR", listing)
    now = evaluation_time(options, clock, request)
    evaluation = evaluate_record(ruleset, record, now, hook=request.hook, shadow_drafts=options.shadow_drafts)
    matched: list[MatchedDraft] = []
    draft_issues: list[InputIssue] = []
    if service.draft_orders is not None:
        considered = considered_drafts(request.hook, drafts, getattr(context, "selections", None))
        matched, draft_issues = match_drafts(service, ruleset.codes, considered, context.patientId, validator)
    card = None
    if service.hook in DEADLINE_HOOKS:
        checked = check_hook_deadline(request.hook, evaluation, context, prefetch.resources)
        draft_issues += checked.issues
        if checked.late is not None:
            card_context = CardContext(
                new_uuid, context.userId, context.encounterId, late=checked.late, zone=options.zone
            )
            card = render_card(evaluation, card_context)
    elif service.draft_orders is None or matched:
        card_context = CardContext(new_uuid, context.userId, context.encounterId, tuple(matched), zone=options.zone)
        card = render_card(evaluation, card_context)
    extension: dict[str, Any] = {
        "rulesetRevision": ruleset.revision,
        "evaluatedAt": now.isoformat(timespec="seconds"),
        "rules": [d.ref for d in evaluation.decisions],
    }
    issues = list(dict.fromkeys([*prefetch.problems, *unread_drafts, *record.issues, *draft_issues]))  # each once
    if issues:
        extension["inputIssues"] = [i.as_dict() for i in issues]
    if unavailable:
        extension["unavailable"] = unavailable
    response = CdsResponse(cards=[card] if card else [], extension={RESPONSE_EXTENSION: extension})
    finished = time.perf_counter()
    timings = {"data_ms": (data_ready - started) * 1000, "evaluate_ms": (finished - data_ready) * 1000}
    return CallOutcome(response, evaluation, fetched_keys, timings, issues)
