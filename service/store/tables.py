"""The tables. Patient ids are stored only as salted hashes; card text is not stored, only what decided it."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, DateTime, ForeignKey, Index, Integer, String, Text
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column


class Base(DeclarativeBase):
    pass


class DecisionRow(Base):
    __tablename__ = "decisions"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), index=True)
    service_id: Mapped[str] = mapped_column(String(100))
    hook: Mapped[str] = mapped_column(String(50))
    hook_instance: Mapped[str] = mapped_column(String(64))
    patient_hash: Mapped[str] = mapped_column(String(32), index=True)
    issuer: Mapped[str | None] = mapped_column(String(300))
    ruleset_revision: Mapped[str] = mapped_column(String(20))
    rules_evaluated: Mapped[list[str]] = mapped_column(JSON)
    rules_fired: Mapped[list[str]] = mapped_column(JSON)
    lead_rule: Mapped[str | None] = mapped_column(String(120), index=True)
    indicator: Mapped[str | None] = mapped_column(String(10))
    card_uuid: Mapped[str | None] = mapped_column(String(64), unique=True)
    suggestions: Mapped[list[dict[str, Any]]] = mapped_column(JSON)
    evidence: Mapped[list[str]] = mapped_column(JSON)
    fetched_keys: Mapped[list[str]] = mapped_column(JSON)
    shadow_fired: Mapped[list[str] | None] = mapped_column(JSON, nullable=True)
    data_ms: Mapped[float] = mapped_column()
    evaluate_ms: Mapped[float] = mapped_column()
    site: Mapped[str | None] = mapped_column(String(200), nullable=True)  # name@revision of the site codes
    shadow_evaluated: Mapped[list[str] | None] = mapped_column(JSON, nullable=True)  # drafts run in shadow


class FeedbackRow(Base):
    __tablename__ = "feedback"
    __table_args__ = (Index("feedback_once", "card_uuid", "outcome", "outcome_timestamp", unique=True),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    received_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    service_id: Mapped[str] = mapped_column(String(100))
    card_uuid: Mapped[str] = mapped_column(String(64), index=True)
    decision_id: Mapped[str] = mapped_column(ForeignKey("decisions.id"), index=True)
    rule: Mapped[str | None] = mapped_column(String(120), index=True)
    outcome: Mapped[str] = mapped_column(String(20))
    accepted_suggestions: Mapped[list[str]] = mapped_column(JSON)
    override_system: Mapped[str | None] = mapped_column(String(300))
    override_code: Mapped[str | None] = mapped_column(String(100))
    override_display: Mapped[str | None] = mapped_column(String(300))
    user_comment: Mapped[str | None] = mapped_column(Text)
    outcome_timestamp: Mapped[str] = mapped_column(String(40))


class SeenTokenRow(Base):
    __tablename__ = "seen_tokens"

    token_id: Mapped[str] = mapped_column(String(400), primary_key=True)
    expires_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), index=True)
