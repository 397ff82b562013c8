"""Prometheus metrics, in a registry per app (so tests never share counters by accident).

With several workers (`serve --workers N`), each worker is its own process: `serve` sets PROMETHEUS_MULTIPROC_DIR,
every worker writes its values there, and `/metrics` sums them, whichever worker answers the scrape.
"""

from __future__ import annotations

import os
from collections import Counter as Tally
from collections.abc import Iterable

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.multiprocess import MultiProcessCollector

from service.engine.decide import Decision
from service.fhir.record import PatientRecord


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.calls = Counter(
            "mscc_hook_calls",
            "Hook calls answered, by service and HTTP status",
            ["service", "status"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "mscc_hook_latency_seconds",
            "Hook call latency",
            ["service"],
            registry=self.registry,
            # fine enough to see 1-5 ms calls (most are), coarse above
            buckets=(0.001, 0.002, 0.003, 0.004, 0.005, 0.0075, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0),
        )
        self.cards = Counter(
            "mscc_cards",
            "Cards returned, by lead rule version and indicator",
            ["rule", "indicator"],
            registry=self.registry,
        )
        self.auth_refusals = Counter(
            "mscc_auth_refusals",
            "Calls and feedback refused 401, by service and the check that failed (missing_token, malformed_token, "
            "algorithm, unknown_issuer, unknown_key, key_set, signature, audience, claims, tenant, replayed): the "
            "caller is told only 401",
            ["service", "check"],
            registry=self.registry,
        )
        self.fetch_failures = Counter(
            "mscc_fhir_fetch_failures", "FHIR server fetches that failed, by reason", ["reason"], registry=self.registry
        )
        self.log_failures = Counter(
            "mscc_decision_log_failures",
            "Decision rows lost: the memory bound reached while journal and database refused them, or removed from the "
            "journal under the worker (each logged with its id)",
            registry=self.registry,
        )
        self.replay_fallbacks = Counter(
            "mscc_replay_check_fallbacks",
            "JWT replay checks that fell back: to the database when the host table had no room or could not be "
            "opened, to this process alone when storage was unavailable",
            ["reason"],
            registry=self.registry,
        )
        self.storage_refusals = Counter(
            "mscc_decision_log_storage_refusals",
            "Journal drains that storage refused: the rows stay on disk and are written when storage returns",
            registry=self.registry,
        )
        self.rows_at_risk = Gauge(
            "mscc_decision_rows_at_risk",
            "Decision rows held in memory only (journal and database both refused them): lost if the worker dies",
            registry=self.registry,
            multiprocess_mode="livesum",
        )
        self.spool_pending = Gauge(
            "mscc_decision_log_spool_pending",
            "Decision-log rows journaled on disk and not yet in the database",
            registry=self.registry,
            multiprocess_mode="livesum",  # each worker counts its own journal
        )
        self.decision_lag = Gauge(
            "mscc_decision_log_lag_seconds",
            "How long the oldest decision row not yet in the database has waited (0: the database is up to date)",
            registry=self.registry,
            multiprocess_mode="livemax",
        )
        self.feedback = Counter(
            "mscc_feedback", "Feedback items stored, by outcome", ["outcome"], registry=self.registry
        )
        self.set_aside = Counter(
            "mscc_resources_set_aside",
            "Input resources not used, by reason (invalid, no-subject, other-patient, entered-in-error, refuted, "
            "cancelled, out-of-range)",
            ["category"],
            registry=self.registry,
        )
        self.criterion_errors = Counter(
            "mscc_criterion_errors",
            "Resources a criterion could not be evaluated on (a FHIRPath error), by rule version and criterion: each "
            "is named on the card as a check left incomplete",
            ["rule", "criterion"],
            registry=self.registry,
        )
        self.rule_reloads = Counter(
            "mscc_rules_reloads",
            "Rule-set reloads, by outcome: swapped in, unchanged, or refused (the old rule set kept serving)",
            ["outcome"],
            registry=self.registry,
        )
        self.ruleset = Gauge(
            "mscc_ruleset_info",
            "The rule-set revision served",
            ["revision"],
            registry=self.registry,
            multiprocess_mode="max",
        )

    def count_fetch_failure(self, reason: str) -> None:
        self.fetch_failures.labels(reason).inc()

    def count_criterion_errors(self, decisions: Iterable[Decision]) -> int:
        """Count each resource a criterion failed on, by rule version and criterion; return how many (for the log)."""
        failed = 0
        for decision in decisions:
            for criterion, _ in decision.errors:
                self.criterion_errors.labels(decision.ref, criterion).inc()
                failed += 1
        return failed

    def count_set_aside(self, record: PatientRecord) -> dict[str, int]:
        """Count the record's set-aside resources by category; return the counts (for a log line: no ids)."""
        counts: Tally[str] = Tally(item.category for item in record.set_aside)
        for category, n in counts.items():
            self.set_aside.labels(category).inc(n)
        return dict(counts)

    def render(self) -> bytes:
        folder = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
        if folder:  # several workers: the sum of what every worker wrote
            registry = CollectorRegistry()
            MultiProcessCollector(registry, path=folder)  # type: ignore[no-untyped-call]
            return generate_latest(registry)
        return generate_latest(self.registry)
