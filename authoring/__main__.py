"""Rule authors' and developers' commands, apart from the running service (`python -m service serve`).

python -m authoring workbench              the service in development mode with the workbench (make run)
python -m authoring rules test|diff|draft|release|lock|schema|expand
                                           run rule tests, compare rule sets, start a new version, release it
                                           (draft to active in one step), record releases, write schemas,
                                           expand value sets from a terminology server
python -m authoring valuesets [--check]   rebuild the value sets made from published code lists
python -m authoring token keygen|sign       development tokens: a key pair, its issuers entry, a signed JWT
python -m authoring terminology [--check] rewrite rules/terminology/ (the ICD code lists value sets are checked against)
python -m authoring validate               clinical validation: every rule version over examples, real records
                                           and the red-flag matrix; exit 1 on a safety failure
python -m authoring examples build         rebuild fhir_examples/requests and responses
python -m authoring examples request ID [--at now]
                                           an example's hook call with its dates moved (production mode)
python -m authoring openapi [--write]      print (or write) openapi.yaml from the running app
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from service.__main__ import ruleset_or_exit, serve, site_default
from service.config import PROJECT_ROOT


def _valuesets(check: bool) -> int:
    from authoring.published import PUBLISHED
    from authoring.valuesets import outputs, write

    if not PUBLISHED.is_dir():
        print(f"the published code lists are not at {PUBLISHED}", file=sys.stderr)
        return 2
    if check:
        stale = [str(p) for p, content in outputs().items() if not p.is_file() or p.read_text("utf-8") != content]
        for path in stale:
            print(f"out of date: {path} (run `python -m authoring valuesets`)")
        return 1 if stale else 0
    for written in write():
        print(f"wrote {written}")
    return 0


def _terminology(check: bool) -> int:
    from authoring.icdlists import stale_code_lists, write_code_lists

    if check:
        stale = stale_code_lists()
        for path in stale:
            print(f"out of date: {path} (run `python -m authoring terminology`)")
        return 1 if stale else 0
    for written in write_code_lists():
        print(f"wrote {written}")
    return 0


def _validate() -> int:
    from authoring.validation import main

    return main()


def cmd_rules_test(args: argparse.Namespace) -> int:
    from authoring.ruletests import lint_rule_tests, run_rule_tests

    ruleset = ruleset_or_exit(args.rules, args.site)
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
    from authoring.release import lock_rules

    return lock_rules(args.rules)


def cmd_rules_draft(args: argparse.Namespace) -> int:
    from datetime import date

    from authoring.release import ReleaseError, draft_from_active

    try:
        written = draft_from_active(args.rules, args.rule, args.version, date.today())
    except ReleaseError as error:
        print(error, file=sys.stderr)
        return 1
    for path in written:
        print(f"wrote {path}")
    then = f"python -m authoring rules release {args.rule} {args.version}"
    print(f"edit the draft and its changelog entry, add tests, then `{then}`")
    return 0


def cmd_rules_release(args: argparse.Namespace) -> int:
    from authoring.release import ReleaseError, release

    try:
        done = release(args.rules, args.examples, args.rule, args.version)
    except ReleaseError as error:
        print(error, file=sys.stderr)
        return 1
    retired = f", {args.rule}@{done.retired} retired" if done.retired else ""
    print(f"released {args.rule}@{args.version}{retired}; {len(set(done.written))} files written")
    print("next: make test, then commit rules/ and fhir_examples/")
    return 0


def cmd_token_keygen(args: argparse.Namespace) -> int:
    from authoring.devtoken import issuers_entry, keygen

    try:
        key = keygen(args.key, args.kid)
    except FileExistsError as error:
        print(error, file=sys.stderr)
        return 1
    print(f"# private key written to {args.key} (keep it out of git); give this file as MSCC_ISSUERS_FILE:")
    print(issuers_entry(key, args.iss, args.fhir_server), end="")
    return 0


def cmd_token_sign(args: argparse.Namespace) -> int:
    from authoring.devtoken import read_key, service_url, sign

    try:
        key = read_key(args.key)
    except (OSError, ValueError) as error:
        print(f"cannot use {args.key}: {error} (write one with `python -m authoring token keygen`)", file=sys.stderr)
        return 1
    print(sign(key, args.iss, service_url(args.base_url, args.service)))
    return 0


def _compare_versions(args: argparse.Namespace) -> int:
    """`rules diff --compare B` (the active version against B) or `--compare A B`: every patient, drafts too."""
    from authoring.compare import compare, print_comparison

    ruleset = ruleset_or_exit(args.rules, args.site)
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


def cmd_openapi(args: argparse.Namespace) -> int:
    from authoring.openapi import openapi_yaml

    text = openapi_yaml()
    if args.write:
        (PROJECT_ROOT / "openapi.yaml").write_text(text, encoding="utf-8")
        print("wrote openapi.yaml")
    else:
        print(text, end="")
    return 0


def cmd_examples_request(args: argparse.Namespace) -> int:
    """An example's request moved in time, for a service in production mode (it evaluates at its own clock)."""
    import json
    from datetime import UTC, datetime

    from authoring.timeshift import request_at

    path = PROJECT_ROOT / "fhir_examples" / "requests" / f"{args.example}.json"
    if not path.is_file():
        print(f"no example {args.example!r} in fhir_examples/requests/", file=sys.stderr)
        return 1
    try:
        at = datetime.now(UTC) if args.at == "now" else datetime.fromisoformat(args.at.replace("Z", "+00:00"))
    except ValueError:
        at = None
    if at is None or at.tzinfo is None:
        print(f"--at {args.at!r}: now, or a date and time with a time zone (2027-01-05T09:00:00Z)", file=sys.stderr)
        return 2
    print(json.dumps(request_at(json.loads(path.read_text(encoding="utf-8")), at), indent=2, ensure_ascii=False))
    return 0


def cmd_examples_build(args: argparse.Namespace) -> int:
    from authoring.examples import build_all

    for path in build_all():
        print(f"wrote {path.relative_to(PROJECT_ROOT)}")
    return 0


def cmd_workbench(args: argparse.Namespace) -> int:
    return serve(args.host, args.port, dev=True, factory="authoring.workbench:workbench_app")


def command_line() -> argparse.ArgumentParser:
    """Every authoring command (a function, so that the docs can be checked against it: tests/test_guides.py)."""
    parser = argparse.ArgumentParser(prog="python -m authoring", description=__doc__.split("\n\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    workbench = commands.add_parser("workbench", help="the service in development mode with the rule workbench")
    workbench.add_argument("--host", default="127.0.0.1")
    workbench.add_argument("--port", type=int, default=8080)
    workbench.set_defaults(func=cmd_workbench)
    _rule_commands(commands.add_parser("rules", help="test, compare, lock and expand the rule set"))
    valuesets = commands.add_parser("valuesets", help="rebuild value sets from the published code lists")
    valuesets.add_argument("--check", action="store_true", help="only report files that are out of date")
    valuesets.set_defaults(func=lambda args: _valuesets(args.check))
    token = commands.add_parser(
        "token", help="development tokens: act as an EHR against production mode"
    ).add_subparsers(dest="token_command", required=True)
    keygen = token.add_parser("keygen", help="write an ES384 key pair and print the issuers-file entry trusting it")
    keygen.add_argument("--key", type=Path, default=Path("var/dev-ehr-key.json"), help="where the private JWK goes")
    keygen.add_argument("--iss", default="https://ehr.dev.example", help="the issuer the tokens will name")
    keygen.add_argument("--kid", default="dev-ehr-key-1")
    keygen.add_argument("--fhir-server", action="append", default=[], help="a FHIR base URL it may be fetched from")
    keygen.set_defaults(func=cmd_token_keygen)
    signer = token.add_parser("sign", help="print a JWT for one service, signed with the key keygen wrote")
    signer.add_argument("--key", type=Path, default=Path("var/dev-ehr-key.json"))
    signer.add_argument("--iss", default="https://ehr.dev.example")
    signer.add_argument(
        "--base-url",
        default=os.environ.get("MSCC_PUBLIC_BASE_URL", "http://127.0.0.1:8080"),
        help="MSCC_PUBLIC_BASE_URL",
    )
    signer.add_argument("--service", default="mscc-patient-view", help="the service id the token is for")
    signer.set_defaults(func=cmd_token_sign)
    terminology = commands.add_parser("terminology", help="rewrite the ICD code lists in rules/terminology/")
    terminology.add_argument("--check", action="store_true", help="exit 1 when they differ from the packages")
    terminology.set_defaults(func=lambda args: _terminology(args.check))
    commands.add_parser("validate", help="clinical validation report (sensitivity, specificity, disagreements)")
    commands.choices["validate"].set_defaults(func=lambda _args: _validate())
    examples = commands.add_parser("examples", help="fhir_examples/ maintenance").add_subparsers(
        dest="examples_command", required=True
    )
    moved = examples.add_parser("request", help="print an example's hook call with its dates moved to --at")
    moved.add_argument("example", help="an example id, e.g. 04-myeloma-thoracic-pain-score-8")
    moved.add_argument("--at", default="now", help="now (default), or a date and time with a time zone")
    moved.set_defaults(func=cmd_examples_request)
    examples.add_parser("build", help="rebuild requests/ and responses/ from patients/").set_defaults(
        func=cmd_examples_build
    )
    openapi = commands.add_parser("openapi", help="print the OpenAPI document (or --write openapi.yaml)")
    openapi.add_argument("--write", action="store_true")
    openapi.set_defaults(func=cmd_openapi)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = command_line().parse_args(argv)
    return int(args.func(args))


def _rule_commands(rules_parser: argparse.ArgumentParser) -> None:
    rules = rules_parser.add_subparsers(dest="rules_command", required=True)
    for name, func, text in (
        ("test", cmd_rules_test, "run every rule's test cases"),
        ("diff", cmd_rules_diff, "what the working rule set changes for every example patient"),
        ("schema", cmd_rules_schema, "regenerate the JSON Schemas for rule, rule-set and test files"),
        ("lock", cmd_rules_lock, "record released versions in rules/versions.lock (they may then never change)"),
    ):
        p = rules.add_parser(name, help=text)
        p.add_argument("--rules", type=Path, default=PROJECT_ROOT / "rules")
        p.add_argument("--site", type=Path, default=site_default(), help="site folder (default: MSCC_SITE_DIR)")
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
    draft = rules.add_parser("draft", help="copy the active version of a rule to a new draft version")
    draft.add_argument("rule")
    draft.add_argument("version", help="MAJOR.MINOR.PATCH, higher than the active version")
    draft.add_argument("--rules", type=Path, default=PROJECT_ROOT / "rules")
    draft.set_defaults(func=cmd_rules_draft)
    release = rules.add_parser(
        "release",
        help="draft -> active, active -> retired, lock, example pins and expected answers, in one step",
    )
    release.add_argument("rule")
    release.add_argument("version")
    release.add_argument("--rules", type=Path, default=PROJECT_ROOT / "rules")
    release.add_argument("--examples", type=Path, default=PROJECT_ROOT / "fhir_examples")
    release.set_defaults(func=cmd_rules_release)
    expand = rules.add_parser("expand", help="fill ValueSet.expansion from a terminology server's $expand (is-a)")
    expand.add_argument("--server", required=True, help="FHIR terminology server base URL")
    expand.add_argument("--token", default=os.environ.get("MSCC_TERMINOLOGY_TOKEN"), help="bearer token, if needed")
    expand.add_argument("--valueset", help="only this value set (file name without .json)")
    expand.add_argument("--rules", type=Path, default=PROJECT_ROOT / "rules")
    expand.set_defaults(func=cmd_rules_expand)


if __name__ == "__main__":
    sys.exit(main())
