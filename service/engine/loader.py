"""Load `rules/` and refuse it unless every file validates: the service never serves a broken rule set.

Every problem is collected (file, field, message) so an author fixes them all in one pass.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from service.engine.codecheck import code_problems
from service.engine.criteria import Compiling, CriterionNode, compile_criterion
from service.engine.lock import LOCK_FILE, Released, content_hash, depends_on, lock_problems, read_lock
from service.engine.model import RuleSetConfig, RuleVersion
from service.engine.ruleset import CompiledRule, RuleSet
from service.engine.site import SITE_FILE, Site, apply_site
from service.engine.terminology import TERMINOLOGY_DIR, IcdEditions, load_editions
from service.engine.valuesets import CodeIndex, ValueSetDef, holds_nothing, parse_valueset, resolve_includes
from service.engine.yamlfile import field_line, load_yaml
from service.errors import RuleProblem, RuleSetInvalid, ValueSetError, field_problems, validation_errors
from service.fhir.textread import TextReader, TextRuleError, TextTerms
from service.fhir.validate import validate_resource

RULESET_FILE = "ruleset.yaml"
VALUESET_DIR = "valuesets"
VALIDATION_DIR = "validation"  # the reviewed clinical-validation table (python -m authoring validate), not a rule
TEXT_DIR = "text"  # medspaCy ConText rules for findings written in words (fhir/textread.py), not a rule
MENTION_RULES = "mentions.json"
ANSWER_RULES = "answers.json"
_VERSION_FILE = re.compile(r"^\d+\.\d+\.\d+\.yaml$")
_PREFETCH_TOKEN = re.compile(r"\{\{\s*([^}]*?)\s*\}\}")
KNOWN_TOKENS = frozenset(
    {
        "context.patientId",
        "context.userId",
        "context.encounterId",
        "userPractitionerId",
        "userPractitionerRoleId",
        "userPatientId",
        "userRelatedPersonId",
    }
)


class _Problems:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.items: list[RuleProblem] = []

    def add(self, path: Path, field: str, problem: str, line: int | None = None) -> None:
        if line is None and field and path.suffix in (".yaml", ".yml", ".json"):
            line = field_line(path, field)
        self.items.append(RuleProblem(_relative(path, self.root), field, problem, line))

    def add_validation(self, path: Path, error: ValidationError) -> None:
        for location, message in field_problems(validation_errors(error), whole=""):
            self.add(path, location, message)


def _relative(path: Path, root: Path) -> str:
    try:
        return str(Path("rules") / path.relative_to(root))
    except ValueError:
        return str(path)


def _read_yaml(path: Path, problems: _Problems) -> Any:
    try:
        return load_yaml(path)
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        reason = getattr(error, "problem", None) or str(error).replace("\n", " ")
        problems.add(path, "", f"not valid YAML: {reason}", int(mark.line) + 1 if mark is not None else None)
    except OSError as error:
        problems.add(path, "", f"cannot be read: {error.strerror}")
    return None


def _rule_folders(root: Path) -> list[Path]:
    not_rules = (VALUESET_DIR, VALIDATION_DIR, TEXT_DIR, TERMINOLOGY_DIR)
    return [p for p in sorted(root.iterdir()) if p.is_dir() and p.name not in not_rules and not p.name.startswith(".")]


def revision_of(root: Path) -> str:
    """Content hash of what decides a card (ruleset.yaml, value sets, rule versions), not of docs or tests."""
    files = [root / RULESET_FILE, *(root / VALUESET_DIR).glob("*.json"), *(root / TEXT_DIR).glob("*.json")]
    files += [p for folder in _rule_folders(root) for p in folder.glob("*.yaml") if _VERSION_FILE.match(p.name)]
    digest = hashlib.sha256()
    for path in sorted(p for p in files if p.is_file()):
        digest.update(str(path.relative_to(root)).encode())
        digest.update(b"\0")
        digest.update(path.read_bytes())
    return digest.hexdigest()[:12]


def _load_config(root: Path, problems: _Problems) -> RuleSetConfig | None:
    path = root / RULESET_FILE
    raw = _read_yaml(path, problems)
    if raw is None:
        if path.exists():
            return None
        problems.add(path, "", "missing: the rule set needs its ruleset.yaml")
        return None
    try:
        config = RuleSetConfig.model_validate(raw)
    except ValidationError as error:
        problems.add_validation(path, error)
        return None
    for i, service in enumerate(config.services):
        for key, template in service.prefetch.items():
            for token in _PREFETCH_TOKEN.findall(template):
                if token not in KNOWN_TOKENS:
                    problems.add(path, f"services.{i}.prefetch.{key}", f"unknown prefetch token {{{{{token}}}}}")
    for name, order in config.orders.items():
        sample = {**order.resource, "subject": {"reference": "Patient/example"}, "priority": "stat"}
        if sample.get("resourceType") != "ServiceRequest":
            problems.add(path, f"orders.{name}.resource.resourceType", "must be ServiceRequest")
        for issue in validate_resource(sample):
            problems.add(path, f"orders.{name}.resource", f"{issue.location}: {issue.message}")
    for i, service in enumerate(config.services):
        for key in service.optional_prefetch:
            if key not in service.prefetch:
                problems.add(path, f"services.{i}.optional_prefetch", f"{key!r} is not a prefetch key")
    ids = [s.id for s in config.services]
    if len(ids) != len(set(ids)):
        problems.add(path, "services", "service ids must be unique")
    shown: dict[tuple[str, str], str] = {}
    for code, reason in config.override_reasons.items():
        seen = shown.setdefault((reason.category, reason.display.casefold()), code)
        if seen != code:  # feedback echoes category and display: two reasons alike could not be told apart
            message = f"same category and display as {seen!r}: feedback could not tell them apart"
            problems.add(path, f"override_reasons.{code}.display", message)
    return config


def _check_triggers(root: Path, config: RuleSetConfig, valuesets: dict[str, ValueSetDef], problems: _Problems) -> None:
    for i, service in enumerate(config.services):
        for j, trigger in enumerate(service.draft_orders or []):
            for field_name in ("code_valueset", "reason_valueset"):
                wanted = getattr(trigger, field_name)
                if wanted is not None and wanted not in valuesets:
                    where = f"services.{i}.draft_orders.{j}.{field_name}"
                    problems.add(root / RULESET_FILE, where, f"value set {wanted!r} does not exist")
            where = f"services.{i}.draft_orders.{j}"
            if trigger.offers is not None and trigger.offers not in config.orders:
                problems.add(root / RULESET_FILE, f"{where}.offers", f"no order {trigger.offers!r} in orders")
            if trigger.headline is not None:
                try:
                    trigger.headline.format(order="order", priority="urgent")
                except (KeyError, IndexError, ValueError) as error:
                    message = f"only {{order}} and {{priority}} may be used: {error}"
                    problems.add(root / RULESET_FILE, f"{where}.headline", message)


@lru_cache(maxsize=64)
def _parse_valueset_file(text: str, valueset_id: str) -> ValueSetDef:
    """Parse a value-set file's text; cached by content, since a large expansion takes a tenth of a second to
    validate and the same bytes always give the same value set (reloads and tests read unchanged files)."""
    return parse_valueset(json.loads(text), valueset_id)


def _load_valuesets(root: Path, problems: _Problems) -> dict[str, ValueSetDef]:
    found: dict[str, ValueSetDef] = {}
    folder = root / VALUESET_DIR
    if not folder.is_dir():
        problems.add(folder, "", "missing: value sets live in rules/valuesets/*.json")
        return found
    for path in sorted(folder.glob("*.json")):
        try:
            found[path.stem] = _parse_valueset_file(path.read_text(encoding="utf-8"), path.stem)
        except ValueSetError as error:  # before ValueError, which it extends
            problems.add(path, error.location, error.message)
        except OSError as error:
            problems.add(path, "", f"cannot be read: {error.strerror}")
        except ValueError as error:
            problems.add(path, "", f"not valid JSON: {error}")
    for vs_id, problem in resolve_includes(found).items():
        problems.add(folder / f"{vs_id}.json", "ValueSet.compose.include.valueSet", problem)
    return found


def _text_reader(root: Path, valuesets: dict[str, ValueSetDef], problems: _Problems) -> TextReader | None:
    """The medspaCy reader of the value sets' words; a term, pattern or rule file it cannot use stops the rule set."""
    folder = root / TEXT_DIR
    mention_rules, answer_rules = folder / MENTION_RULES, folder / ANSWER_RULES
    for path in (mention_rules, answer_rules):
        if not path.is_file():
            problems.add(path, "", "missing: findings written in words are read with these medspaCy ConText rules")
    if not (mention_rules.is_file() and answer_rules.is_file()):
        return None
    terms = TextTerms(
        {v.id: tuple(v.text_terms) for v in valuesets.values() if v.text_terms},
        {v.id: tuple(tuple(p) for p in v.text_patterns) for v in valuesets.values() if v.text_patterns},
        {v.id: tuple(v.text_not) for v in valuesets.values() if v.text_not},
    )
    try:
        return _cached_reader(
            json.dumps([terms.phrases, terms.patterns, terms.not_phrases], sort_keys=True),
            (MENTION_RULES, mention_rules.read_text(encoding="utf-8")),
            (ANSWER_RULES, answer_rules.read_text(encoding="utf-8")),
        )
    except TextRuleError as error:
        problems.add(folder, "", str(error))
    except OSError as error:
        problems.add(folder, "", f"cannot be read: {error.strerror}")
    return None


@lru_cache(maxsize=8)
def _cached_reader(terms: str, mention_rules: tuple[str, str], answer_rules: tuple[str, str]) -> TextReader:
    """One reader per distinct content (terms as JSON, rule files as read): reloads and tests that read unchanged
    files build the medspaCy pipeline once."""
    phrases, patterns, not_phrases = json.loads(terms)
    return TextReader(
        TextTerms(
            {k: tuple(v) for k, v in phrases.items()},
            {k: tuple(tuple(p) for p in v) for k, v in patterns.items()},
            {k: tuple(v) for k, v in not_phrases.items()},
        ),
        mention_rules,
        answer_rules,
    )


def _dependency_order(
    rule: RuleVersion, criteria: dict[str, CriterionNode], path: Path, problems: _Problems
) -> tuple[str, ...]:
    order: list[str] = []
    state: dict[str, str] = {}

    def visit(name: str, trail: tuple[str, ...]) -> None:
        if state.get(name) == "done" or name not in rule.criteria:
            return
        if state.get(name) == "visiting":
            problems.add(path, f"criteria.{name}", f"criteria refer to each other in a cycle: {' -> '.join(trail)}")
            return
        state[name] = "visiting"
        for child in criteria[name].depends_on:
            visit(child, (*trail, child))
        state[name] = "done"
        order.append(name)

    if rule.when not in rule.criteria:
        problems.add(path, "when", f"criterion {rule.when!r} is not defined")
    visit(rule.when, (rule.when,))
    referenced = set(order) | {s.unless for s in rule.card.suggestions if s.unless}
    for s in rule.card.suggestions:
        if s.unless:
            visit(s.unless, (s.unless,))
    for name in rule.criteria:
        if name not in referenced:
            problems.add(path, f"criteria.{name}", "is never used by `when` or a suggestion's `unless`")
    return tuple(dict.fromkeys(order))


def _check_patient_prefetch(
    rule: RuleVersion, criteria: dict[str, CriterionNode], config: RuleSetConfig, path: Path, problems: _Problems
) -> None:
    """A criterion that reads the Patient (an age reads Patient.birthDate): every service the rule answers must
    prefetch (or fetch) the Patient, or the criterion could never hold and nobody would know."""
    readers = [c for c in criteria.values() if any("Patient" in read.types for read in c.reads)]
    if not readers:
        return
    for service in config.services:
        if rule.hooks is not None and service.hook not in rule.hooks:
            continue
        if not any(t.startswith(("Patient/", "Patient?")) for t in service.prefetch.values()):
            problems.add(
                path,
                f"criteria.{readers[0].name}.{readers[0].kind}",
                f"reads Patient.birthDate, but service {service.id!r} has no Patient prefetch: add "
                "`patient: Patient/{{context.patientId}}` to its prefetch in ruleset.yaml",
            )


def _check_card(rule: RuleVersion, config: RuleSetConfig, path: Path, problems: _Problems) -> None:
    for i, suggestion in enumerate(rule.card.suggestions):
        if suggestion.order not in config.orders:
            problems.add(path, f"card.suggestions.{i}.order", f"order {suggestion.order!r} is not in ruleset.yaml")
        if suggestion.unless and suggestion.unless not in rule.criteria:
            problems.add(path, f"card.suggestions.{i}.unless", f"criterion {suggestion.unless!r} is not defined")
    for i, code in enumerate(rule.card.override_reasons):
        if code not in config.override_reasons:
            problems.add(path, f"card.override_reasons.{i}", f"override reason {code!r} is not in ruleset.yaml")
    hooks = {s.hook for s in config.services}
    for i, hook in enumerate(rule.hooks or []):
        if hook not in hooks:
            problems.add(path, f"hooks.{i}", f"no service in ruleset.yaml answers hook {hook!r}")
    if rule.deadline is not None:
        if rule.deadline.counted_from is not None and rule.deadline.counted_from not in rule.criteria:
            message = f"criterion {rule.deadline.counted_from!r} is not defined"
            problems.add(path, "deadline.counted_from", message)
        if rule.deadline.duration() is None:
            problems.add(
                path, "deadline.mri_within", f"{rule.deadline.mri_within!r} is not an ISO 8601 duration, e.g. PT24H"
            )


def _load_rule_folder(
    folder: Path, config: RuleSetConfig, valuesets: dict[str, ValueSetDef], problems: _Problems
) -> tuple[dict[str, CompiledRule], bool]:
    """The folder's versions that load, and whether every version file did (a failed one makes other checks of
    the folder, such as the active count, meaningless: they are skipped, not reported falsely)."""
    versions: dict[str, CompiledRule] = {}
    complete = True
    for path in sorted([*folder.glob("*.yml"), *(folder / "tests").glob("*.yml")]):
        problems.add(path, "", f"YAML files here are named .yaml: rename it to {path.stem}.yaml (it was not read)")
        complete = False
    for path in sorted(folder.glob("*.yaml")):
        if not _VERSION_FILE.match(path.name):
            problems.add(path, "", "a rule version file is named MAJOR.MINOR.PATCH.yaml")
            complete = False
            continue
        raw = _read_yaml(path, problems)
        if raw is None:
            complete = False
            continue
        try:
            rule = RuleVersion.model_validate(raw)
        except ValidationError as error:
            problems.add_validation(path, error)
            complete = False
            continue
        if rule.id != folder.name:
            problems.add(path, "id", f"must equal the folder name {folder.name!r}")
        if f"{rule.version}.yaml" != path.name:
            problems.add(path, "version", f"must equal the file name ({path.stem})")
        before = len(problems.items)

        def report(where: str, message: str, path: Path = path) -> None:
            problems.add(path, where, message)

        criteria = {
            name: compile_criterion(name, spec, Compiling(name, rule, valuesets, report))
            for name, spec in rule.criteria.items()
        }
        order = _dependency_order(rule, criteria, path, problems)
        _check_card(rule, config, path, problems)
        _check_patient_prefetch(rule, criteria, config, path, problems)
        if len(problems.items) == before:
            digest = content_hash(raw) if isinstance(raw, dict) else ""
            versions[rule.version] = CompiledRule(rule, _relative(path, problems.root), criteria, order, digest)
        else:
            complete = False
    return versions, complete


def _check_folder(folder: Path, versions: dict[str, CompiledRule], problems: _Problems, complete: bool) -> None:
    active = [v for v, r in versions.items() if r.spec.status == "active"]
    if complete and len(active) > 1:  # none is fine: a new rule starts as a draft, a withdrawn one is retired
        problems.add(folder, "status", f"at most one version may be active; found {len(active)} ({active})")
    if complete and not versions:
        problems.add(folder, "", "holds no rule version (MAJOR.MINOR.PATCH.yaml)")
    changelog = folder / "CHANGELOG.md"
    text = changelog.read_text(encoding="utf-8") if changelog.is_file() else None
    if text is None:
        problems.add(changelog, "", "missing: every rule keeps a changelog")
    else:
        for version in versions:
            if not re.search(rf"^##\s+\[?{re.escape(version)}\]?", text, re.MULTILINE):
                problems.add(changelog, "", f"has no `## {version}` entry")
    tests = folder / "tests"
    if not tests.is_dir() or not any(tests.glob("*.yaml")):
        problems.add(tests, "", "missing: every rule has test cases in tests/*.yaml")


def _check_precedence(root: Path, config: RuleSetConfig, rule_ids: list[str], problems: _Problems) -> None:
    """Every rule is placed in `precedence` exactly once, and nothing else is: ties are never alphabetical."""
    listed = config.precedence
    for rule_id in sorted(set(rule_ids) - set(listed)):
        problems.add(
            root / RULESET_FILE,
            "precedence",
            f"rule {rule_id!r} is not listed: place it where it should win among rules of the same urgency",
        )
    for rule_id in sorted(set(listed) - set(rule_ids)):
        problems.add(root / RULESET_FILE, "precedence", f"{rule_id!r} is not a rule folder")
    for rule_id in sorted({r for r in listed if listed.count(r) > 1}):
        problems.add(root / RULESET_FILE, "precedence", f"{rule_id!r} is listed more than once")


def valuesets_read(rule: CompiledRule) -> set[str]:
    """The value sets a version's criteria read (before those they include)."""
    return {read.valueset for c in rule.criteria.values() for read in c.reads if read.valueset is not None}


def released_versions(
    rules: dict[str, dict[str, CompiledRule]], valuesets: dict[str, ValueSetDef]
) -> dict[str, Released]:
    """Every loaded version as the lock sees it: status, rule hash, file, and the value sets its answer depends
    on (the shipped ones: `valuesets` before a site adds its codes)."""
    known: dict[str, str] = {}
    return {
        r.ref: Released(r.spec.status, r.content_hash, r.path, depends_on(valuesets_read(r), valuesets, known))
        for versions in rules.values()
        for r in versions.values()
    }


def _check_lock(
    root: Path, rules: dict[str, dict[str, CompiledRule]], valuesets: dict[str, ValueSetDef], problems: _Problems
) -> None:
    try:
        lock = read_lock(root)
    except (ValueError, yaml.YAMLError) as error:
        problems.add(root / LOCK_FILE, "", str(error))
        return
    released = released_versions(rules, valuesets)
    for ref, problem in lock_problems(lock, released):
        # a version's file as loaded (`rules/<id>/<version>.yaml`), else the lock itself
        where = root / Path(released[ref].file).relative_to("rules") if ref in released else root / LOCK_FILE
        problems.add(where, "", problem)


@dataclass
class _Loading:
    """What the stages of one load share: the folders, the problems found so far, and what each stage built."""

    root: Path
    site_dir: Path | None
    strict: bool
    problems: _Problems
    config: RuleSetConfig | None = None
    editions: IcdEditions | None = None
    valuesets: dict[str, ValueSetDef] = field(default_factory=dict)
    shipped_valuesets: dict[str, ValueSetDef] = field(default_factory=dict)  # before the site adds its codes
    site: Site | None = None
    text_reader: TextReader | None = None
    folders: list[Path] = field(default_factory=list)
    rules: dict[str, dict[str, CompiledRule]] = field(default_factory=dict)


def _stage_config(state: _Loading) -> None:
    state.config = _load_config(state.root, state.problems)


def _stage_terminology(state: _Loading) -> None:
    """Codes are checked when a rule set is to be served, not when an older one is read to compare with."""
    if not state.strict:
        return
    state.editions, problems = load_editions(state.root)
    for path, message in problems:
        state.problems.add(path, "", message)


def _stage_valuesets(state: _Loading) -> None:
    state.valuesets = _load_valuesets(state.root, state.problems)
    state.shipped_valuesets = state.valuesets
    if state.editions is None:
        return
    for vs in state.valuesets.values():
        for location, message in code_problems(vs.written, state.editions):
            state.problems.add(state.root / VALUESET_DIR / f"{vs.id}.json", location, message)


def _stage_site(state: _Loading) -> None:
    if state.site_dir is None:
        return
    site_dir = state.site_dir.resolve()
    state.site, state.valuesets, site_problems = apply_site(site_dir, state.valuesets, state.editions)
    for location, message in site_problems:
        state.problems.add(site_dir / SITE_FILE, location, message)


def _stage_empty_valuesets(state: _Loading) -> None:
    for vs_id in sorted(state.valuesets):
        if holds_nothing(vs_id, state.valuesets):
            state.problems.add(
                state.root / VALUESET_DIR / f"{vs_id}.json",
                "ValueSet.compose.exclude",
                "expands to nothing: every code it includes is excluded, so it can never match a patient",
            )


def _stage_text_reader(state: _Loading) -> None:
    state.text_reader = _text_reader(state.root, state.valuesets, state.problems)


def _stage_triggers(state: _Loading) -> None:
    if state.config is not None:
        _check_triggers(state.root, state.config, state.valuesets, state.problems)


def _stage_rules(state: _Loading) -> None:
    state.folders = _rule_folders(state.root)
    if not state.folders:
        state.problems.add(state.root, "", "no rule folders found")
    if state.config is None:
        return
    for folder in state.folders:
        versions, complete = _load_rule_folder(folder, state.config, state.valuesets, state.problems)
        _check_folder(folder, versions, state.problems, complete)
        state.rules[folder.name] = versions


def _stage_precedence(state: _Loading) -> None:
    if state.config is not None and state.strict:
        _check_precedence(state.root, state.config, [f.name for f in state.folders], state.problems)


def _stage_lock(state: _Loading) -> None:
    if state.strict and not state.problems.items:  # a release is checked only against a rule set that loads
        _check_lock(state.root, state.rules, state.shipped_valuesets, state.problems)


# The loader's stages, in order: each reads what the ones before it built and adds the problems it finds.
STAGES: tuple[tuple[str, Callable[[_Loading], None]], ...] = (
    ("config", _stage_config),
    ("terminology", _stage_terminology),
    ("value sets", _stage_valuesets),
    ("site codes", _stage_site),
    ("empty value sets", _stage_empty_valuesets),
    ("text reader", _stage_text_reader),
    ("draft-order triggers", _stage_triggers),
    ("rules", _stage_rules),
    ("precedence", _stage_precedence),
    ("release lock", _stage_lock),
)


def load_ruleset(root: Path, site_dir: Path | None = None, *, strict: bool = True) -> RuleSet:
    """Load and validate `root` (the rules/ folder) and, when given, the site folder that adds a hospital's own
    codes to its value sets (engine/site.py), through the STAGES; raise RuleSetInvalid listing every problem.

    `strict=False` skips the release lock and the complete `precedence`: only for reading a rule set to compare
    with (`rules diff` against an older commit) or to lock it (`rules lock`); never for serving."""
    root = root.resolve()
    if not root.is_dir():
        raise RuleSetInvalid([RuleProblem(str(root), "", "rules folder does not exist")])
    state = _Loading(root, site_dir, strict, _Problems(root))
    for _name, stage in STAGES:
        stage(state)
    if state.problems.items or state.config is None:
        raise RuleSetInvalid(state.problems.items)
    revision = revision_of(root)
    if state.site is not None:  # the site's codes decide answers too: the revision names both
        revision = hashlib.sha256(f"{revision}+{state.site.revision}".encode()).hexdigest()[:12]
    return RuleSet(state.config, revision, root, CodeIndex(state.valuesets), state.rules, state.site, state.text_reader)
