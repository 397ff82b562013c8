"""One settings class, read from `MSCC_*` environment variables and validated at start-up.

Unsafe combinations are refused rather than tolerated: security is on unless development mode is asked
for explicitly, and then the service says so loudly at start-up.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Annotated, Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import Field, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

PROJECT_ROOT = Path(__file__).resolve().parent.parent


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="MSCC_", extra="forbid")

    rules_dir: Path = Field(default=PROJECT_ROOT / "rules", description="the rule set to serve")
    rules_reload_seconds: float = Field(
        default=2.0,
        ge=0,
        le=3600,
        description="how often each worker checks the rules and site folders for changes (0: only on "
        "POST /rules/reload or SIGHUP); a changed rule set that does not validate is refused, the old one serves on",
    )
    site_dir: Path | None = Field(
        default=None, description="a folder with site.yaml: the hospital's own codes added to the value sets"
    )
    public_base_url: str | None = Field(
        default=None, description="this service's public base URL, e.g. https://cds.example.org (JWT audience)"
    )
    dev_mode: bool = Field(default=False, description="development only: no JWT check, clock override allowed")
    issuers_file: Path | None = Field(default=None, description="YAML file of trusted EHR issuers (JWT and FHIR)")
    database_url: str = Field(default=f"sqlite:///{PROJECT_ROOT / 'var' / 'mscc-cds.sqlite3'}")
    max_body_bytes: int = Field(default=5_000_000, ge=1_000, description="larger request bodies get 413")
    strict_fhir: bool = Field(default=False, description="refuse hook calls whose prefetch holds invalid FHIR")
    fetch_timeout_seconds: float = Field(default=3.0, gt=0, le=30)
    fetch_max_pages: int = Field(default=20, ge=1, le=1000)
    cors_origins: Annotated[list[str], NoDecode] = Field(
        default=["*"], description="origins browsers may call from: `*`, or a comma-separated list (a JSON list works)"
    )
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    timezone: str = Field(
        default="UTC", description="the hospital's IANA time zone (e.g. Europe/London): dates on cards are local"
    )
    patient_hash_salt: str = Field(default="", description="salt for hashed patient ids in the decision log")
    spool_dir: Path | None = Field(
        default=None,
        description="where decision-log rows wait while the database is down (default: beside an SQLite file, "
        "else var/spool)",
    )
    spool_drain_seconds: float = Field(
        default=5.0, gt=0, le=300, description="how often journaled rows are retried while storage refuses them"
    )
    decision_flush_seconds: float = Field(
        default=0.2,
        gt=0,
        le=5,
        description="how often each worker moves its journaled decision rows to the database (one batch): how far "
        "the decision log may fall behind the answers",
    )
    decision_write: Literal["journal", "database"] = Field(
        default="journal",
        description="journal: each decision row goes to this worker's journal before the answer, and to the database "
        "in batches (fastest; one machine). database: the row is written to the database before the answer leaves, "
        "so any replica can die at once and every other replica already knows the card (several replicas on "
        "PostgreSQL); while the database refuses, rows go to the journal as in journal mode",
    )
    spool_shared_root: Path | None = Field(
        default=None,
        description="replicas: the folder on storage they share (a ReadWriteMany volume) that holds each replica's "
        "journal folder (MSCC_SPOOL_DIR below it); each replica drains the journals of replicas gone for a minute",
    )
    spool_adopt_seconds: float = Field(
        default=60.0,
        ge=1,
        le=3600,
        description="replicas: a journal folder under MSCC_SPOOL_SHARED_ROOT whose heartbeat is this old belongs to a "
        "replica that is gone, and is drained by the others (each replica beats every sixth of it)",
    )
    decision_fsync: bool = Field(
        default=False,
        description="fsync each journaled decision row before the answer leaves (survives a power cut, costs a "
        "disk flush per call); without it a row survives a crash of the process, and is in the database within "
        "MSCC_DECISION_FLUSH_SECONDS",
    )
    feedback_wait_seconds: float = Field(
        default=2.0,
        ge=0,
        le=30,
        description="how long feedback for a card not yet in the decision log waits for its row (written after the "
        "answer, possibly by another worker) before it is refused",
    )
    minimal_prefetch: bool = Field(
        default=True,
        description="discovery offers the prefetch queries derived from the rules (code and category filters); "
        "false offers the base queries of ruleset.yaml, for an EHR that cannot run the filters",
    )
    gc_interval_seconds: float = Field(
        default=0.1,
        ge=0,
        le=5,
        description="each worker collects cyclic garbage on this timer instead of in the middle of calls "
        "(0: Python's automatic collection)",
    )
    replay_check: Literal["host", "database"] | None = Field(
        default=None,
        description="where JWT ids are remembered against replay: `host`, a file table every worker on "
        "this host shares (no database write per call; the default with SQLite), or `database`, the shared "
        "table replicas on several hosts need (the default with PostgreSQL)",
    )
    operator_token: str | None = Field(
        default=None,
        min_length=16,
        description="when set, /evaluate, /reports and /metrics need `Authorization: Bearer <token>`; in production "
        "/evaluate is closed until it is set",
    )
    evaluate_max_entries: int = Field(default=2_000, ge=1, description="larger Bundles on /evaluate get a 422")
    evaluate_max_bytes: int = Field(
        default=5_000_000, ge=1_000, description="larger bodies on /evaluate get a 413 before they are read"
    )
    evaluate_concurrency: int = Field(
        default=1, ge=1, description="evaluations at once on /evaluate; more get a 503, so hook calls never starve"
    )
    evaluate_time_share: float | None = Field(
        default=None,
        gt=0,
        le=1,
        description="the share of each worker's time /evaluate may use (beyond it: 503 with Retry-After); default "
        "0.05 in production, 1 in development mode",
    )
    shadow_drafts: bool = Field(
        default=False, description="also evaluate draft rule versions on every call: logged, never shown"
    )

    @field_validator("cors_origins", mode="before")
    @classmethod
    def _origins(cls, value: Any) -> Any:
        """`https://a.example, https://b.example` as well as `["https://a.example"]`; each origin has no path."""
        if isinstance(value, str):
            text = value.strip()
            value = json.loads(text) if text.startswith("[") else [o.strip() for o in text.split(",") if o.strip()]
        if isinstance(value, list):
            for origin in value:
                if origin != "*" and not re.fullmatch(r"https?://[^/\s]+", str(origin)):
                    raise ValueError(f"MSCC_CORS_ORIGINS: {origin!r} is not an origin (scheme://host[:port], no path)")
        return value

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"MSCC_TIMEZONE {value!r} is not an IANA time zone (e.g. Europe/London)") from None
        return value

    @model_validator(mode="after")
    def _refuse_unsafe(self) -> Settings:
        if not self.dev_mode and self.issuers_file is None:
            raise ValueError(
                "JWT security is on by default and needs MSCC_ISSUERS_FILE (the trusted EHR issuers); "
                "for local development only, set MSCC_DEV_MODE=true (or run `make run`)"
            )
        if not self.dev_mode and not self.public_base_url:
            raise ValueError("MSCC_PUBLIC_BASE_URL is required with JWT security: it is the audience EHRs sign for")
        if self.public_base_url and not self.public_base_url.startswith(("https://", "http://")):
            raise ValueError("MSCC_PUBLIC_BASE_URL must be an http(s) URL")
        return self

    @property
    def evaluate_share(self) -> float:
        """MSCC_EVALUATE_TIME_SHARE, or its default for the mode."""
        if self.evaluate_time_share is not None:
            return self.evaluate_time_share
        return 1.0 if self.dev_mode else 0.05

    @property
    def decision_spool_dir(self) -> Path:
        return self.spool_dir or self._beside_database(".spool", "spool")

    @property
    def replay_mode(self) -> Literal["host", "database"]:
        if self.replay_check is not None:
            return self.replay_check
        return "host" if self.database_url.startswith("sqlite") else "database"

    @property
    def replay_table_path(self) -> Path:
        return self._beside_database(".replay", "replay.table")

    def writable_folders(self) -> dict[str, Path]:
        """Each folder the running service writes to, by the setting that places it: under a read-only root
        filesystem each needs a volume (`serve` warns at start when one is not writable; tests/test_deploy.py holds
        the Dockerfile and the Kubernetes manifests to this list). `serve --workers N` also makes its metrics
        folder under TMPDIR."""
        folders = {"MSCC_SPOOL_DIR": self.decision_spool_dir}
        if self.database_url.startswith("sqlite:///") and not self.database_url.endswith(":memory:"):
            folders["MSCC_DATABASE_URL"] = Path(self.database_url.removeprefix("sqlite:///")).parent
        if self.replay_mode == "host":
            folders["MSCC_REPLAY_CHECK"] = self.replay_table_path.parent
        return folders

    def _beside_database(self, suffix: str, name_in_var: str) -> Path:
        """A file kept beside an SQLite database file (same disk, same host), else in var/."""
        if self.database_url.startswith("sqlite:///") and not self.database_url.endswith(":memory:"):
            return Path(self.database_url.removeprefix("sqlite:///") + suffix)
        return PROJECT_ROOT / "var" / name_in_var

    @property
    def allow_clock_override(self) -> bool:
        """Example requests carry their own evaluation time; only development mode honours it."""
        return self.dev_mode
