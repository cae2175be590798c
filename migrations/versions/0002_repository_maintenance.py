"""repository-wide maintenance of shared repositories

Revision ID: 0002
Revises: 0001
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "repository_maintenance",
        sa.Column("repository", sa.Text(), nullable=False),
        sa.Column("last_prune_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_check_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("repository", name=op.f("pk_repository_maintenance")),
    )


def downgrade() -> None:
    op.drop_table("repository_maintenance")
