"""Command line for operators: run the service, check a rule set, evaluate a Bundle.

python -m service serve | rules check | evaluate FILE   (rule authors' commands: python -m authoring)
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


def ruleset_or_exit(rules_dir: Path, site_dir: Path | None = None) -> RuleSet:
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

    from service.store.spool import folder_writable

    for setting, folder in settings.writable_folders().items():
        if not folder_writable(folder):
            logging.getLogger("service").warning(
                "a folder the service writes to cannot be written: mount a writable volume there",
                extra={"fields": {"setting": setting, "folder": str(folder)}},
            )


SERVE_FACTORY = "service.app:serve_app"  # the service alone: the authors' workbench is `python -m authoring`


def _fork_workers(factory: str) -> None:
    """Workers fork from this process, which has checked the rule set (and so built its medspaCy reader)."""
    import logging

    from service import prefork

    prefork.warm(factory)
    if not prefork.use_fork_workers():
        logging.getLogger("service").warning("workers are spawned, not forked: each imports and builds everything")


def cmd_serve(args: argparse.Namespace) -> int:
    if args.site is not None:  # the workers read settings from the environment: the flag sets it for them
        os.environ["MSCC_SITE_DIR"] = str(args.site.resolve())
    return serve(args.host, args.port, workers=args.workers, forwarded_allow_ips=args.forwarded_allow_ips, dev=args.dev)


def serve(
    host: str,
    port: int,
    *,
    workers: int = 1,
    forwarded_allow_ips: str = "127.0.0.1",
    dev: bool = False,
    factory: str = SERVE_FACTORY,
) -> int:
    """Check everything, migrate once, then run `factory` under uvicorn (workers forked from this process)."""
    if dev:
        os.environ["MSCC_DEV_MODE"] = "true"
    metrics_folder: Path | None = None
    if workers > 1 and not os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        # Each worker writes its metrics here and /metrics sums them (set before anything imports prometheus_client).
        metrics_folder = Path(tempfile.mkdtemp(prefix="mscc-metrics-"))
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = str(metrics_folder)
    try:
        _checked_run(host, port, workers, forwarded_allow_ips, factory)
    finally:  # a restarted container keeps its /tmp volume: leave no folder behind
        if metrics_folder is not None:
            shutil.rmtree(metrics_folder, ignore_errors=True)
    return 0


def _checked_run(host: str, port: int, workers: int, forwarded_allow_ips: str, factory: str) -> None:
    import uvicorn

    settings = _settings_or_exit()
    ruleset_or_exit(settings.rules_dir, settings.site_dir)
    _issuers_or_exit(settings)
    from service.logs import configure_logging

    configure_logging(settings.log_level)
    _warn_unwritable(settings)
    _migrate_or_exit(settings)
    if workers > 1:
        _fork_workers(factory)
    uvicorn.run(
        factory,
        factory=True,
        host=host,
        port=port,
        workers=workers,
        log_config=None,
        proxy_headers=True,
        forwarded_allow_ips=forwarded_allow_ips,
    )


def cmd_rules_check(args: argparse.Namespace) -> int:
    from authoring.ruletests import lint_rule_tests, run_rule_tests

    ruleset = ruleset_or_exit(args.rules, args.site)
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


def cmd_evaluate(args: argparse.Namespace) -> int:
    from service.cdshooks.cards import CardContext, render_card
    from service.engine.evaluation import evaluate_record, record_of_bundle
    from service.engine.trace import trace_decisions
    from service.errors import InvalidFhir
    from service.runtime import random_uuid

    ruleset = ruleset_or_exit(args.rules, args.site)
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


def site_default() -> Path | None:
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
    serve.add_argument("--site", type=Path, default=None, help="site folder of local codes (default: MSCC_SITE_DIR)")
    serve.set_defaults(func=cmd_serve)

    rules = sub.add_parser("rules", help="validate the rule set").add_subparsers(dest="rules_command", required=True)
    check = rules.add_parser("check", help="validate every rule file, value set and test file")
    check.add_argument("--rules", type=Path, default=PROJECT_ROOT / "rules")
    check.add_argument("--site", type=Path, default=site_default(), help="site folder (default: MSCC_SITE_DIR)")
    check.set_defaults(func=cmd_rules_check)

    evaluate = sub.add_parser("evaluate", help="evaluate a FHIR Bundle file and explain the result")
    evaluate.add_argument("file")
    evaluate.add_argument("--now", help="evaluation time, ISO 8601 with zone (default: now)")
    evaluate.add_argument("--rules", type=Path, default=PROJECT_ROOT / "rules")
    evaluate.add_argument("--site", type=Path, default=site_default(), help="site folder (default: MSCC_SITE_DIR)")
    evaluate.add_argument("--json", action="store_true")
    evaluate.set_defaults(func=cmd_evaluate)

    return top


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    return int(args.func(args))


if __name__ == "__main__":
    raise SystemExit(main())
