"""Command line for operators and rule authors.

python -m service serve | rules check | rules test | rules diff | rules expand | rules schema | evaluate FILE | openapi
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

from pydantic import ValidationError

from service.config import PROJECT_ROOT

if TYPE_CHECKING:  # imported lazily at run time so `--help` stays fast
    from service.config import Settings
    from service.engine.ruleset import RuleSet


def _settings_or_exit() -> Settings:
    from service.config import Settings
    from service.errors import field_problems, validation_errors

    try:
        return Settings()
    except ValidationError as error:
        for _, message in field_problems(validation_errors(error)):
            print(f"configuration error: {message}", file=sys.stderr)
        raise SystemExit(2) from None


def _ruleset_or_exit(rules_dir: Path, site_dir: Path | None = None) -> RuleSet:
    from service.engine.loader import load_ruleset
    from service.errors import RuleSetInvalid

    try:
        return load_ruleset(rules_dir, site_dir)
    except RuleSetInvalid as error:
        print(error, file=sys.stderr)
        raise SystemExit(1) from None


def _issuers_or_exit(settings: Settings) -> None:
    """The issuers file is read before any worker starts: a mistake is one line, not a traceback per worker."""
    from service.cdshooks.issuers import IssuerRegistry
    from service.errors import ConfigurationError

    try:
        IssuerRegistry.load(settings.issuers_file)
    except ConfigurationError as error:
        print(f"configuration error: {error}", file=sys.stderr)
        raise SystemExit(2) from None


def _migrate_or_exit(settings: Settings) -> None:
    """Migrate once, before any worker starts (they never race). A database that cannot be reached or a URL that
    names no driver is one line naming the setting, never the URL itself (it may hold a password)."""
    from sqlalchemy.exc import ArgumentError, NoSuchModuleError, SQLAlchemyError

    from service.store.db import make_engine, migrate

    try:
        engine = make_engine(settings.database_url)
        migrate(engine)
        engine.dispose()
    except (ArgumentError, NoSuchModuleError) as error:
        print(f"configuration error: MSCC_DATABASE_URL is not a database URL ({type(error).__name__})", file=sys.stderr)
        raise SystemExit(2) from None
    except SQLAlchemyError as error:
        reason = type(getattr(error, "orig", None) or error).__name__
        print(
            f"configuration error: MSCC_DATABASE_URL: the database cannot be reached or migrated ({reason})",
            file=sys.stderr,
        )
        raise SystemExit(2) from None


def _warn_unwritable(settings: Settings) -> None:
    """A folder the service writes to that it cannot (a read-only root without its volume): one line at start
    naming the setting. Not fatal: cards are answered meanwhile, and /readyz says what is degraded."""
    import logging

    for setting, folder in settings.writable_folders().items():
        try:
            folder.mkdir(parents=True, exist_ok=True)
            writable = os.access(folder, os.W_OK | os.X_OK)
        except OSError:
            writable = False
        if not writable:
            logging.getLogger("service").warning(
                "a folder the service writes to cannot be written: mount a writable volume there",
                extra={"fields": {"setting": setting, "folder": str(folder)}},
            )


SERVE_FACTORY = "authoring.workbench:serve_app"  # the service with the rule authors' workbench mounted


def _fork_workers(factory: str) -> None:
    """Workers fork from this process, which has checked the rule set (and so built its medspaCy reader)."""
    import logging

    from service import prefork

    prefork.warm(factory)
    if not prefork.use_fork_workers():
        logging.getLogger("service").warning("workers are spawned, not forked: each imports and builds everything")


def cmd_serve(args: argparse.Namespace) -> int:
    if args.dev:
        os.environ["MSCC_DEV_MODE"] = "true"
    metrics_folder: Path | None = None
    if args.workers > 1 and not os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        # Each worker writes its metrics here and /metrics sums them (set before anything imports prometheus_client).
        metrics_folder = Path(tempfile.mkdtemp(prefix="mscc-metrics-"))
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = str(metrics_folder)
    try:
        _serve(args)
    finally:  # a restarted container keeps its /tmp volume: leave no folder behind
        if metrics_folder is not None:
            shutil.rmtree(metrics_folder, ignore_errors=True)
    return 0


def _serve(args: argparse.Namespace) -> None:
    import uvicorn

    settings = _settings_or_exit()
    _ruleset_or_exit(settings.rules_dir, settings.site_dir)
    _issuers_or_exit(settings)
    from service.logs import configure_logging

    configure_logging(settings.log_level)
    _warn_unwritable(settings)
    _migrate_or_exit(settings)
    if args.workers > 1:
        _fork_workers(SERVE_FACTORY)
    uvicorn.run(
        SERVE_FACTORY,
        factory=True,
        host=args.host,
        port=args.port,
        workers=args.workers,
        log_config=None,
        proxy_headers=True,
        forwarded_allow_ips=args.forwarded_allow_ips,
    )


def cmd_rules_check(args: argparse.Namespace) -> int:
    from authoring.ruletests import lint_rule_tests, run_rule_tests

    ruleset = _ruleset_or_exit(args.rules, args.site)
    problems = lint_rule_tests(run_rule_tests(ruleset), ruleset)
    for problem in problems:
        print(f"  - {problem}", file=sys.stderr)
    if problems:
        return 1
    versions = sum(len(v) for v in ruleset.rules.values())
    print(
        f"rule set {ruleset.revision} is valid: {len(ruleset.rules)} rules, {versions} versions, "
        f"{len(ruleset.codes.valuesets)} value sets"
    )
    for rule in ruleset.active():
        print(f"  active  {rule.ref:40} {rule.spec.card.indicator:8} {rule.spec.title}")
    if ruleset.site is not None:
        added = ", ".join(f"+{n} in {vs}" for vs, n in sorted(ruleset.site.additions.items()))
        print(f"  site    {ruleset.site.ref}: {added}")
    return 0


def cmd_rules_test(args: argparse.Namespace) -> int:
    from authoring.ruletests import lint_rule_tests, run_rule_tests

    ruleset = _ruleset_or_exit(args.rules, args.site)
    results = [r for r in run_rule_tests(ruleset) if not args.k or args.k in f"{r.rule_id} {r.name}"]
    for r in results:
        mark = "PASS" if r.passed else "FAIL"
        print(f"{mark}  {r.rule_id}@{r.version}  {r.name}" + (f"\n      {r.message}" if r.message else ""))
    failed = [r for r in results if not r.passed]
    problems = lint_rule_tests(results, ruleset) if not args.k else []
    for problem in problems:
        print(f"LINT  {problem}")
    if args.boundaries:
        from authoring.compare import boundary_report

        print("\n" + "\n".join(boundary_report(ruleset)))
    print(f"{len(results) - len(failed)} passed, {len(failed)} failed")
    return 1 if failed or problems else 0


def cmd_rules_diff(args: argparse.Namespace) -> int:
    from authoring.diff import diff_against_git, print_diff

    if args.compare:
        return _compare_versions(args)
    changes = diff_against_git(args.rules, args.base, PROJECT_ROOT / "fhir_examples", args.site)
    print_diff(changes, args.base)
    return 1 if args.fail_on_change and any(c.changed for c in changes) else 0


def cmd_rules_lock(args: argparse.Namespace) -> int:
    """Add newly released (active or retired) versions to rules/versions.lock; refuse when a locked one changed."""
    from service.engine.loader import load_ruleset, released_versions
    from service.engine.lock import LOCK_FILE, read_lock, updated_lock, write_lock
    from service.errors import RuleSetInvalid

    try:
        ruleset = load_ruleset(args.rules, args.site, strict=False)
        lock, added = updated_lock(read_lock(ruleset.root), released_versions(ruleset.rules))
    except RuleSetInvalid as error:
        print(error, file=sys.stderr)
        return 1
    except ValueError as error:
        print(f"rules/{LOCK_FILE}: {error}", file=sys.stderr)
        return 1
    write_lock(ruleset.root, lock)
    for ref in added:
        print(f"locked {ref}")
    print(f"rules/{LOCK_FILE}: {len(lock)} released versions" + ("" if added else " (nothing new)"))
    return 0


def _compare_versions(args: argparse.Namespace) -> int:
    """`rules diff --compare B` (the active version against B) or `--compare A B`: every patient, drafts too."""
    from authoring.compare import compare, print_comparison

    ruleset = _ruleset_or_exit(args.rules, args.site)
    a, b = (None, args.compare[0]) if len(args.compare) == 1 else (args.compare[0], args.compare[1])
    try:
        changes = compare(ruleset, a, b)
    except ValueError as error:
        print(error, file=sys.stderr)
        return 2
    print_comparison(changes, a or "active", b)
    return 1 if args.fail_on_change and any(c.kind != "same" for c in changes) else 0


def cmd_rules_expand(args: argparse.Namespace) -> int:
    from authoring.expand import ExpandError, expand_all

    try:
        done = expand_all(args.rules / "valuesets", args.server, args.token, args.valueset)
    except ExpandError as error:
        print(f"expansion failed: {error}", file=sys.stderr)
        return 1
    for item in done:
        print(f"expanded {item.path.name}: {item.codes} codes")
    if not done:
        print("no value set needs a terminology server (no is-a on SNOMED CT or LOINC)")
    return 0


def cmd_rules_schema(args: argparse.Namespace) -> int:
    from authoring.schema import write_schemas

    for path in write_schemas(args.rules):
        print(f"wrote {path}")
    return 0


def cmd_evaluate(args: argparse.Namespace) -> int:
    from service.cdshooks.cards import CardContext, render_card
    from service.engine.evaluation import evaluate_record, record_of_bundle
    from service.engine.trace import trace_decisions
    from service.errors import InvalidFhir
    from service.runtime import random_uuid

    ruleset = _ruleset_or_exit(args.rules, args.site)
    try:
        record = record_of_bundle(json.loads(Path(args.file).read_text(encoding="utf-8")), ruleset)
    except (OSError, ValueError) as error:
        print(f"cannot read {args.file}: {error}", file=sys.stderr)
        return 2
    except InvalidFhir as error:
        print(f"{args.file}: {error.message}: " + "; ".join(error.details), file=sys.stderr)
        return 2
    now = datetime.fromisoformat(args.now) if args.now else datetime.now(UTC)
    evaluation = evaluate_record(ruleset, record, now)
    card = render_card(evaluation, CardContext(random_uuid))
    if args.json:
        traces = [t.model_dump(mode="json") for t in trace_decisions(evaluation.decisions)]
        print(json.dumps({"cards": [card.dump()] if card else [], "trace": traces}, indent=2))
        return 0
    for issue in record.issues:
        print(f"invalid: {issue.reference} {issue.location}: {issue.message}")
    for aside in record.set_aside:
        print(f"set aside: {aside.reference}: {aside.reason}")
    for d in evaluation.decisions:
        print(f"{'FIRES' if d.fired else 'no   '}  {d.ref}")
        for name in reversed(d.rule.order):
            r = d.criteria[name]
            refs = ", ".join(f"{f.reference} ({f.date_text})" for f in r.evidence)
            print(f"         {'+' if r.held else '-'} {name}" + (f": {refs}" if refs else ""))
    print(f"\ncard: [{card.indicator}] {card.summary}" if card else "\nno card")
    return 0


def cmd_openapi(args: argparse.Namespace) -> int:
    from authoring.openapi import openapi_yaml

    text = openapi_yaml()
    if args.write:
        (PROJECT_ROOT / "openapi.yaml").write_text(text, encoding="utf-8")
        print("wrote openapi.yaml")
    else:
        print(text, end="")
    return 0


def cmd_examples_build(args: argparse.Namespace) -> int:
    from authoring.examples import build_all

    for path in build_all():
        print(f"wrote {path.relative_to(PROJECT_ROOT)}")
    return 0


def _site_default() -> Path | None:
    site = os.environ.get("MSCC_SITE_DIR")
    return Path(site) if site else None


def parser() -> argparse.ArgumentParser:
    top = argparse.ArgumentParser(prog="python -m service", description=__doc__)
    sub = top.add_subparsers(dest="command", required=True)
    serve = sub.add_parser("serve", help="run the HTTP service")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=8080)
    serve.add_argument("--workers", type=int, default=1)
    serve.add_argument("--forwarded-allow-ips", default="127.0.0.1")
    serve.add_argument("--dev", action="store_true", help="development mode: no JWT check (prints a warning)")
    serve.set_defaults(func=cmd_serve)

    rules = sub.add_parser("rules", help="validate, test and compare the rule set").add_subparsers(
        dest="rules_command", required=True
    )
    for name, func, text in (
        ("check", cmd_rules_check, "validate every rule file, value set and test file"),
        ("test", cmd_rules_test, "run every rule's test cases"),
        ("diff", cmd_rules_diff, "what the working rule set changes for every example patient"),
        ("schema", cmd_rules_schema, "regenerate the JSON Schemas for rule, rule-set and test files"),
        ("lock", cmd_rules_lock, "record released versions in rules/versions.lock (they may then never change)"),
    ):
        p = rules.add_parser(name, help=text)
        p.add_argument("--rules", type=Path, default=PROJECT_ROOT / "rules")
        p.add_argument("--site", type=Path, default=_site_default(), help="site folder (default: MSCC_SITE_DIR)")
        p.set_defaults(func=func)
        if name == "test":
            p.add_argument("-k", default="", help="only cases whose rule id or name contains this text")
            p.add_argument(
                "--boundaries",
                action="store_true",
                help="also evaluate patients at each threshold and window edge of every active and draft version",
            )
        if name == "diff":
            p.add_argument("--base", default="HEAD", help="git revision to compare with (default HEAD)")
            p.add_argument("--fail-on-change", action="store_true")
            p.add_argument(
                "--compare",
                nargs="+",
                metavar="ID@VERSION",
                help="compare versions (drafts too) over every example, real and boundary patient: one version is "
                "compared with its rule's active version, two with each other",
            )
    expand = rules.add_parser("expand", help="fill ValueSet.expansion from a terminology server's $expand (is-a)")
    expand.add_argument("--server", required=True, help="FHIR terminology server base URL")
    expand.add_argument("--token", default=os.environ.get("MSCC_TERMINOLOGY_TOKEN"), help="bearer token, if needed")
    expand.add_argument("--valueset", help="only this value set (file name without .json)")
    expand.add_argument("--rules", type=Path, default=PROJECT_ROOT / "rules")
    expand.set_defaults(func=cmd_rules_expand)

    evaluate = sub.add_parser("evaluate", help="evaluate a FHIR Bundle file and explain the result")
    evaluate.add_argument("file")
    evaluate.add_argument("--now", help="evaluation time, ISO 8601 with zone (default: now)")
    evaluate.add_argument("--rules", type=Path, default=PROJECT_ROOT / "rules")
    evaluate.add_argument("--site", type=Path, default=_site_default(), help="site folder (default: MSCC_SITE_DIR)")
    evaluate.add_argument("--json", action="store_true")
    evaluate.set_defaults(func=cmd_evaluate)

    examples = sub.add_parser("examples", help="fhir_examples/ maintenance").add_subparsers(
        dest="examples_command", required=True
    )
    examples.add_parser("build", help="rebuild requests/ and responses/ from patients/").set_defaults(
        func=cmd_examples_build
    )

    openapi = sub.add_parser("openapi", help="print the OpenAPI document (or --write openapi.yaml)")
    openapi.add_argument("--write", action="store_true")
    openapi.set_defaults(func=cmd_openapi)
    return top


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    return int(args.func(args))


if __name__ == "__main__":
    raise SystemExit(main())
