"""Decision log and feedback.

Revision ID: 0001
Revises:
"""

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "decisions",
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False, index=True),
        sa.Column("service_id", sa.String(100), nullable=False),
        sa.Column("hook", sa.String(50), nullable=False),
        sa.Column("hook_instance", sa.String(64), nullable=False),
        sa.Column("patient_hash", sa.String(32), nullable=False, index=True),
        sa.Column("issuer", sa.String(300)),
        sa.Column("ruleset_revision", sa.String(20), nullable=False),
        sa.Column("rules_evaluated", sa.JSON, nullable=False),
        sa.Column("rules_fired", sa.JSON, nullable=False),
        sa.Column("lead_rule", sa.String(120), index=True),
        sa.Column("indicator", sa.String(10)),
        sa.Column("card_uuid", sa.String(64), unique=True),
        sa.Column("suggestions", sa.JSON, nullable=False),
        sa.Column("evidence", sa.JSON, nullable=False),
        sa.Column("fetched_keys", sa.JSON, nullable=False),
        sa.Column("data_ms", sa.Float, nullable=False),
        sa.Column("evaluate_ms", sa.Float, nullable=False),
    )
    op.create_table(
        "feedback",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("received_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("service_id", sa.String(100), nullable=False),
        sa.Column("card_uuid", sa.String(64), nullable=False, index=True),
        sa.Column("decision_id", sa.String(36), sa.ForeignKey("decisions.id"), nullable=False, index=True),
        sa.Column("rule", sa.String(120), index=True),
        sa.Column("outcome", sa.String(20), nullable=False),
        sa.Column("accepted_suggestions", sa.JSON, nullable=False),
        sa.Column("override_system", sa.String(300)),
        sa.Column("override_code", sa.String(100)),
        sa.Column("override_display", sa.String(300)),
        sa.Column("user_comment", sa.Text),
        sa.Column("outcome_timestamp", sa.String(40), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("feedback")
    op.drop_table("decisions")
