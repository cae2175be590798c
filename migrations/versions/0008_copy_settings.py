"""the owner's second copy (plan ``copy``) and the ``copy`` job kind

Revision ID: 0008
Revises: 0007

- ``copy_settings``: one row per pod with a second copy: its target, the target's secret
  and its own repository password (both encrypted like the owner's), its repository id,
  retention, verification and when its retention last ran.
- ``uq_jobs_one_exclusive_per_pod`` now counts ``copy`` jobs too (a copy writes the copy
  repository and reads the owner's: one at a time per pod, like backups and prunes).
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None

_OLD = "status IN ('queued', 'running') AND kind IN ('backup', 'restore', 'prune', 'check')"
_NEW = "status IN ('queued', 'running') AND kind IN ('backup', 'restore', 'prune', 'check', 'copy')"


def upgrade() -> None:
    op.create_table(
        "copy_settings",
        sa.Column("pod_id", sa.UUID(), nullable=False),
        sa.Column("target_kind", sa.String(length=16), nullable=False),
        sa.Column("target", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column("target_secret", sa.Text(), nullable=True),
        sa.Column("repo_password", sa.Text(), nullable=False),
        sa.Column("repository_id", sa.String(length=64), nullable=True),
        sa.Column("repository_initialized_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("retention", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column("verification", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column("verified_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("verified_ok", sa.Boolean(), nullable=True),
        sa.Column("pruned_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column(
            "updated_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.ForeignKeyConstraint(
            ["pod_id"], ["pods.id"], name=op.f("fk_copy_settings_pod_id_pods"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("pod_id", name=op.f("pk_copy_settings")),
    )
    op.drop_index("uq_jobs_one_exclusive_per_pod", table_name="jobs")
    op.create_index(
        "uq_jobs_one_exclusive_per_pod",
        "jobs",
        ["pod_id"],
        unique=True,
        postgresql_where=sa.text(_NEW),
    )


def downgrade() -> None:
    op.drop_index("uq_jobs_one_exclusive_per_pod", table_name="jobs")
    op.create_index(
        "uq_jobs_one_exclusive_per_pod",
        "jobs",
        ["pod_id"],
        unique=True,
        postgresql_where=sa.text(_OLD),
    )
    op.drop_table("copy_settings")
