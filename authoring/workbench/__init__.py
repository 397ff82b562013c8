"""The rule authors' workbench: a few server-rendered pages at /workbench to look at rules and their effect.

- `/workbench`: every rule and version (active, draft, retired), and the patients to try them on;
- `/workbench/rules/{id}/{version}`: a version's criteria, value sets and changelog;
- `/workbench/patients/{key}`: one patient, with each version's card next to its trace, active and drafts side by
  side (an uploaded Bundle too: `POST /workbench/patients`);
- `/workbench/diff?a=&b=`: who gains, loses or changes a card between two versions (examples, real records and
  boundary patients);
- `/workbench/report`: feedback as charts (cards shown, accepted, overridden per version and day; override
  reasons; shadow agreement).

`python -m authoring workbench` (`make run`) serves it with the service, in development mode only (its factory
refuses production settings); `python -m service serve` never mounts it, and the serving package never imports
author tooling. A page still answers 404 without development mode or the operator token, should an app mount it
some other way.
"""

from __future__ import annotations

import dataclasses
import json
from datetime import datetime
from functools import cache
from html import escape
from typing import Annotated, Any
from urllib.parse import parse_qs, quote

from fastapi import APIRouter, Depends, FastAPI, Query, Request
from fastapi.responses import HTMLResponse
from pydantic import AwareDatetime, TypeAdapter, ValidationError

from authoring.compare import compare, patients
from authoring.validation import ValidationCase
from authoring.workbench.charts import bars, timeline
from service.api.deps import RuntimeDep, require_operator
from service.cdshooks.cards import CardContext, render_card
from service.cdshooks.cardview import STYLE, card_html, render_markdown
from service.cdshooks.overrides import reason_reader
from service.engine.evaluation import evaluate_record
from service.engine.ruleset import CompiledRule, RuleSet
from service.engine.trace import trace_decisions
from service.errors import BadRequest, NotFound
from service.fhir.bundle import read_patient_bundle
from service.fhir.record import build_record
from service.runtime import Runtime

_PAGE_STYLE = (
    STYLE
    + """
nav a { margin-right: 14px; } nav { margin-bottom: 14px; }
table.list { border-collapse: collapse; margin: 8px 0 18px; background: #fff; }
table.list th, table.list td { border: 1px solid #d0d7de; padding: 4px 8px; text-align: left; font-size: 13px;
  vertical-align: top; }
.status-active { color: #1a7f37; font-weight: bold; } .status-draft { color: #9a6700; font-weight: bold; }
.status-retired { color: #57606a; }
.columns { display: flex; gap: 16px; align-items: flex-start; flex-wrap: wrap; }
.column { flex: 1 1 460px; min-width: 420px; }
.held { color: #1a7f37; } .not-held { color: #d1242f; }
.chart { background: #fff; border: 1px solid #d0d7de; padding: 8px; margin: 0 0 14px; display: inline-block; }
.chart text { font-size: 11px; } .kind-gains { color: #1a7f37; } .kind-loses { color: #d1242f; }
pre { background: #fff; border: 1px solid #d0d7de; padding: 8px; font-size: 12px; overflow-x: auto; }
textarea { width: 100%; min-height: 120px; font-family: monospace; }
"""
)


def allowed(request: Request, runtime: RuntimeDep) -> Runtime:
    """Development mode, or the operator token (as /reports); never a page open to everyone in production."""
    if runtime.settings.operator_token is not None:
        require_operator(request, runtime.settings)
    elif not runtime.settings.dev_mode:
        raise NotFound("the workbench is served in development mode or with MSCC_OPERATOR_TOKEN set")
    return runtime


Workbench = Annotated[Runtime, Depends(allowed)]
_AWARE: TypeAdapter[datetime] = TypeAdapter(AwareDatetime)
router = APIRouter(prefix="/workbench", include_in_schema=False)


def page(title: str, body: str) -> HTMLResponse:
    nav = (
        '<nav><a href="/workbench">Rules and patients</a><a href="/workbench/diff">Compare versions</a>'
        '<a href="/workbench/report">Feedback report</a></nav>'
    )
    html = (
        f'<!doctype html><html lang="en"><head><meta charset="utf-8"><title>{escape(title)} - workbench</title>'
        f"<style>{_PAGE_STYLE}</style></head><body>{nav}<h1>{escape(title)}</h1>{body}</body></html>"
    )
    return HTMLResponse(html)


@cache
def _patients() -> dict[str, ValidationCase]:
    """Examples and real records by a key for URLs (read once: they are files in the repository)."""
    return {f"{c.source.replace(' ', '-')}:{c.name}": c for c in patients()}


def _versions(ruleset: RuleSet) -> list[CompiledRule]:
    order = {"active": 0, "draft": 1, "retired": 2}
    every = [v for versions in ruleset.rules.values() for v in versions.values()]
    return sorted(every, key=lambda v: (v.id, order[v.spec.status], v.version))


def _status(version: CompiledRule) -> str:
    return f'<span class="status-{version.spec.status}">{version.spec.status}</span>'


@router.get("")
def index(runtime: Workbench) -> HTMLResponse:
    ruleset = runtime.ruleset
    rows = "".join(
        f'<tr><td><a href="/workbench/rules/{quote(v.id)}/{quote(v.version)}">{escape(v.ref)}</a></td>'
        f"<td>{_status(v)}</td><td>{escape(v.spec.card.indicator)}</td><td>{escape(v.spec.title)}</td></tr>"
        for v in _versions(ruleset)
    )
    listed = "".join(
        f'<tr><td><a href="/workbench/patients/{quote(key, safe="")}">{escape(c.name)}</a></td>'
        f"<td>{escape(c.source)}</td></tr>"
        for key, c in _patients().items()
    )
    upload = (
        '<form method="post" action="/workbench/patients"><p>Or paste a FHIR R4 Bundle (one patient):</p>'
        '<textarea name="bundle" placeholder="{&quot;resourceType&quot;: &quot;Bundle&quot;, ...}"></textarea>'
        f"<p>{_now_field(runtime.clock())} <button>Evaluate this Bundle</button></p></form>"
    )
    body = (
        f"<p>Rule set <code>{escape(ruleset.revision)}</code>.</p>"
        '<h2>Rules and versions</h2><table class="list" id="rules"><tr><th>version</th><th>status</th>'
        f"<th>card</th><th>title</th></tr>{rows}</table>"
        f'<h2>Patients</h2>{upload}<table class="list" id="patients"><tr><th>patient</th><th>source</th></tr>'
        f"{listed}</table>"
    )
    return page("Rule authors' workbench", body)


def _definition(spec: Any) -> str:
    return json.dumps(spec.model_dump(exclude_none=True, exclude={"description"}), indent=1)


@router.get("/rules/{rule_id}/{version}")
def rule_version(runtime: Workbench, rule_id: str, version: str) -> HTMLResponse:
    ruleset = runtime.ruleset
    rule = ruleset.version(rule_id, version)
    if rule is None:
        raise NotFound(f"no rule version {rule_id}@{version}")
    criteria = "".join(
        f"<tr><td><code>{escape(name)}</code></td><td>{escape(c.spec.kind)}</td><td>{escape(c.spec.description)}</td>"
        f"<td><pre>{escape(_definition(c.spec))}</pre></td></tr>"
        for name, c in rule.criteria.items()
    )
    used = sorted({b.valueset for c in rule.criteria.values() if (b := c.spec.finding or c.spec.measurement)})
    valuesets = "".join(
        f"<tr><td><code>{escape(vs)}</code></td><td>{escape(ruleset.codes.valuesets[vs].title)}</td>"
        f"<td>{ruleset.codes.valuesets[vs].size()}</td></tr>"
        for vs in used
    )
    changelog = ruleset.root / rule_id / "CHANGELOG.md"
    notes = render_markdown(changelog.read_text(encoding="utf-8")) if changelog.is_file() else ""
    body = (
        f"<p>{_status(rule)} &middot; card <b>{escape(rule.spec.card.indicator)}</b> &middot; fires when "
        f"<code>{escape(rule.spec.when)}</code> holds &middot; <code>{escape(rule.path)}</code></p>"
        f'<h2>Criteria</h2><table class="list"><tr><th>name</th><th>kind</th><th>description</th><th>definition</th>'
        f'</tr>{criteria}</table><h2>Value sets</h2><table class="list"><tr><th>id</th><th>title</th><th>size</th>'
        f'</tr>{valuesets}</table><h2>Changelog</h2><div class="detail">{notes}</div>'
    )
    return page(f"{rule.ref}: {rule.spec.title}", body)


def _trace_table(decision_trace: Any) -> str:
    rows = []
    for criterion in reversed(decision_trace.criteria):
        mark = (
            '<span class="held">&#10003; holds</span>'
            if criterion.held
            else '<span class="not-held">&#10007; no</span>'
        )
        evidence = "<br>".join(f"{escape(f.display)} ({escape(f.date)})" for f in criterion.evidence) or "-"
        against = "".join(f"<br><i>against:</i> {escape(f.display)} ({escape(f.date)})" for f in criterion.against)
        skipped = "".join(
            f"<br><i>not counted:</i> {escape(n.display)}: {escape(n.reason)}" for n in criterion.notCounted
        )
        rows.append(
            f"<tr><td><code>{escape(criterion.name)}</code></td><td>{mark}</td><td>{escape(criterion.description)}</td>"
            f"<td>{evidence}{against}{skipped}</td></tr>"
        )
    return (
        '<table class="list trace"><tr><th>criterion</th><th>held</th><th>meaning</th><th>evidence</th></tr>'
        f"{''.join(rows)}</table>"
    )


def _version_column(ruleset: RuleSet, record: Any, case: ValidationCase, version: CompiledRule) -> str:
    """One version's card (alone, as if it were the only rule) and its trace."""
    alone = evaluate_record(ruleset, record, case.now, hook="patient-view", rules=[version])
    own = render_card(alone, CardContext(lambda: "preview"))
    traces = trace_decisions(alone.decisions)
    card = card_html(own.dump()) if own else '<p class="empty">No card from this version.</p>'
    return (
        f'<div class="column version" data-version="{escape(version.ref, quote=True)}">'
        f"<h4>{escape(version.ref)} {_status(version)}</h4>{card}{_trace_table(traces[0]) if traces else ''}</div>"
    )


def _evaluation_time(text: str | None, default: datetime) -> datetime:
    """The "now" an author typed (ISO 8601 with a time zone), or the default (the example's own, or the clock)."""
    if not text or not text.strip():
        return default
    try:
        return _AWARE.validate_python(text.strip())
    except ValidationError:
        raise BadRequest(f"now: {text!r} is not a date and time with a time zone, e.g. 2026-11-20T09:00:00Z") from None


def _now_field(now: datetime) -> str:
    value = escape(now.isoformat(timespec="seconds"), quote=True)
    return (
        f'<label>Evaluated at <input name="now" value="{value}" size="28" '
        'title="ISO 8601 with a time zone: the time the rules are evaluated at"></label>'
    )


def _patient_view(
    runtime: Runtime, title: str, case: ValidationCase, again: str = "", pasted: str | None = None
) -> HTMLResponse:
    """`again`: the URL that evaluates the same patient at another time; `pasted`: the Bundle's text, when it was
    pasted (the form then posts it again, since nothing is stored)."""
    ruleset = runtime.ruleset
    record = build_record(case.patient_id, case.resources, patient_aliases=case.aliases, text=ruleset.text_path)
    combined = evaluate_record(ruleset, record, case.now, hook="patient-view")
    card = render_card(combined, CardContext(lambda: "preview"))
    shown = card_html(card.dump()) if card else '<p class="empty">No card.</p>'
    rows = []
    for rule_id in sorted(ruleset.rules):  # one row per rule: its active version and its drafts side by side
        versions = [v for v in _versions(ruleset) if v.id == rule_id and v.spec.status in ("active", "draft")]
        columns = [_version_column(ruleset, record, case, v) for v in versions]
        if columns:
            rows.append(f'<h3>{escape(rule_id)}</h3><div class="columns">{"".join(columns)}</div>')
    if pasted is None:
        form = f'<form method="get" action="{escape(again, quote=True)}" id="when">{_now_field(case.now)} '
    else:
        form = (
            f'<form method="post" action="/workbench/patients" id="when">{_now_field(case.now)} '
            f'<textarea name="bundle" hidden>{escape(pasted)}</textarea>'
        )
    body = (
        f"{form}<button>Evaluate again</button></form>"
        f"<p>{len(record.facts)} facts read, "
        f"{len(record.set_aside)} set aside, {len(record.issues)} input issues.</p>"
        f'<h2>The card the EHR shows (active rules)</h2><div id="card">{shown}</div>'
        f"<h2>Each rule version on its own: active and drafts side by side</h2>{''.join(rows)}"
    )
    return page(title, body)


@router.get("/patients/{key}")
def patient(
    runtime: Workbench,
    key: str,
    now: Annotated[str | None, Query(description="evaluation time; default: the example's own")] = None,
) -> HTMLResponse:
    case = _patients().get(key)
    if case is None:
        raise NotFound(f"no patient {key!r} (see /workbench)")
    case = dataclasses.replace(case, now=_evaluation_time(now, case.now))
    return _patient_view(runtime, f"{case.source}: {case.name}", case, f"/workbench/patients/{quote(key, safe='')}")


@router.post("/patients")
async def uploaded(runtime: Workbench, request: Request) -> HTMLResponse:
    """A pasted Bundle (form field `bundle`), evaluated at the form's `now` (default: the clock); nothing is
    stored."""
    form = parse_qs((await request.body()).decode("utf-8", "replace"))
    text = (form.get("bundle") or [""])[0]
    now = _evaluation_time((form.get("now") or [""])[0], runtime.clock())
    try:
        bundle = read_patient_bundle(json.loads(text))
    except ValueError as error:
        raise BadRequest(f"not a JSON Bundle: {error}") from None
    case = ValidationCase("uploaded", "uploaded Bundle", bundle.patient_id, bundle.resources, now, "none",
                frozenset(), None, frozenset(bundle.aliases))  # fmt: skip
    return _patient_view(runtime, f"Uploaded Bundle (patient {bundle.patient_id})", case, pasted=text)


@router.get("/diff")
def diff(
    runtime: Workbench,
    a: Annotated[str | None, Query(description="id@version; default: the active version of b's rule")] = None,
    b: Annotated[str | None, Query(description="id@version, a draft usually")] = None,
) -> HTMLResponse:
    ruleset = runtime.ruleset
    drafts = ruleset.drafts()
    b = b or (drafts[0].ref if drafts else None)
    options = "".join(
        f'<option value="{escape(v.ref, quote=True)}"{" selected" if v.ref == b else ""}>{escape(v.ref)} '
        f"({v.spec.status})</option>"
        for v in _versions(ruleset)
    )
    form = (
        '<form method="get"><label>Compare <select name="a"><option value="">the active version</option>'
        f'{options.replace(" selected", "")}</select></label> <label>with <select name="b">{options}</select></label> '
        "<button>Compare</button></form>"
    )
    if b is None:
        return page("Compare versions", form + '<p class="empty">No draft to compare: choose two versions.</p>')
    try:
        changes = compare(ruleset, a or None, b)
    except ValueError as error:
        raise BadRequest(str(error)) from None
    changed = [c for c in changes if c.kind != "same"]
    rows = "".join(
        f'<tr class="change"><td class="kind-{c.kind.split()[0]}">{escape(c.kind)}</td>'
        f"<td>{escape(c.patient.name)}</td><td>{escape(c.patient.source)}</td>"
        f"<td>{escape(str(c.before))}</td><td>{escape(str(c.after))}</td></tr>"
        for c in changed
    )
    body = (
        f"{form}<p><b>{len(changed)}</b> of {len(changes)} patients change between "
        f"<code>{escape(a or 'the active version')}</code> and <code>{escape(b)}</code>.</p>"
        '<table class="list" id="changes"><tr><th>how</th><th>patient</th><th>source</th><th>before</th>'
        f"<th>after</th></tr>{rows}</table>"
    )
    return page("Compare versions", body)


@router.get("/report")
def report(runtime: Workbench) -> HTMLResponse:
    runtime.hooks.decisions.flush()  # every call this worker answered is in the report
    rows = runtime.store.rule_report(classify=reason_reader(runtime.ruleset.config))
    shown = [(r["rule"], {k: r[k] for k in ("shown", "accepted", "overridden")}) for r in rows if r["shown"]]
    reasons: dict[str, int] = {}
    for row in rows:
        for code, n in row["override_reasons"].items():
            reasons[code] = reasons.get(code, 0) + n
    shadow = [
        (r["rule"], {"agree": r.get("shadow_agreements") or 0, "disagree": r.get("shadow_disagreements") or 0})
        for r in rows
        if r.get("shadow_evaluated")
    ]
    days_rows = runtime.store.rule_timeline()
    days = sorted({r["day"] for r in days_rows})
    per_version = []
    for version in sorted({r["rule"] for r in days_rows}):
        mine = {r["day"]: r for r in days_rows if r["rule"] == version}
        lines = {n: [mine[d][n] if d in mine else 0 for d in days] for n in ("shown", "accepted", "overridden")}
        per_version.append(timeline(f"{version}: cards per day", days, lines))
    body = (
        bars("Cards per rule version", shown, ["shown", "accepted", "overridden"])
        + ("".join(per_version) or timeline("Cards per day", [], {}))
        + bars("Override reasons", [(code, {"overridden": n}) for code, n in sorted(reasons.items())], ["overridden"])
        + bars("Drafts in shadow: agreement with the active rules", shadow, ["agree", "disagree"])
        + "<p>Disagreeing decision ids are in <code>GET /reports/rules</code> (<code>disagreement_ids</code>).</p>"
    )
    return page("Feedback report", body)


def install_workbench(app: FastAPI) -> FastAPI:
    app.include_router(router)
    return app


def workbench_app() -> FastAPI:
    """The factory `python -m authoring workbench` gives uvicorn: the service in development mode with the workbench
    mounted. Never in production (`python -m service serve` serves the service alone): it shows whole records and
    runs draft rules on demand."""
    from service.app import serve_app

    app = serve_app()
    if not Runtime.of(app).settings.dev_mode:
        raise RuntimeError("the workbench runs in development mode only (python -m authoring workbench)")
    return install_workbench(app)
