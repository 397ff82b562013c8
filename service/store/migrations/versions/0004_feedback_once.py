"""The same feedback item (card, outcome, outcome time) is stored once, even when two workers receive it at once.

Exact repeats stored before this revision are removed first (the first copy stays), so the index can be built.

Revision ID: 0004
Revises: 0003
"""

from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute(
        "DELETE FROM feedback WHERE id NOT IN "
        "(SELECT keep FROM (SELECT MIN(id) AS keep FROM feedback GROUP BY card_uuid, outcome, outcome_timestamp) AS f)"
    )
    op.create_index("feedback_once", "feedback", ["card_uuid", "outcome", "outcome_timestamp"], unique=True)


def downgrade() -> None:
    op.drop_index("feedback_once", "feedback")
