"""targets watched between runs: the last light probe of each pod's target

Revision ID: 0006
Revises: 0005

Columns on ``plan_states`` (one row per scheduled pod and plan, already read by the status
and already notifying the read cache):

- ``target_state``: ``available`` | ``unavailable``; null until the first probe;
- ``target_code``, ``target_reason``, ``target_hint``: why it is unavailable (null when
  available);
- ``target_checked_at``: the last probe (or successful backup) that judged the target;
- ``target_since``: when the current state began (the transition that raised the webhook).
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("plan_states", sa.Column("target_state", sa.String(length=16), nullable=True))
    op.add_column("plan_states", sa.Column("target_code", sa.String(length=32), nullable=True))
    op.add_column("plan_states", sa.Column("target_reason", sa.Text(), nullable=True))
    op.add_column("plan_states", sa.Column("target_hint", sa.Text(), nullable=True))
    op.add_column(
        "plan_states", sa.Column("target_checked_at", sa.DateTime(timezone=True), nullable=True)
    )
    op.add_column(
        "plan_states", sa.Column("target_since", sa.DateTime(timezone=True), nullable=True)
    )
    op.create_index("ix_plan_states_target_checked_at", "plan_states", ["target_checked_at"])


def downgrade() -> None:
    op.drop_index("ix_plan_states_target_checked_at", table_name="plan_states")
    for column in (
        "target_since",
        "target_checked_at",
        "target_hint",
        "target_reason",
        "target_code",
        "target_state",
    ):
        op.drop_column("plan_states", column)
