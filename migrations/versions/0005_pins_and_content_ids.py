"""pinned snapshots and file version ids in the browse index

Revision ID: 0005
Revises: 0004

- ``snapshots.pinned`` (with ``pinned_until``, ``pin_note``, ``pinned_at``, ``pinned_by``):
  a pinned snapshot is kept by retention until ``pinned_until`` (never expires when null).
  An owner pins by hand; a restore pins its safety snapshot for a number of days; a
  before-update backup is pinned.
- ``snapshot_files.content_id``: a version id of a file's content, equal in two snapshots
  exactly when restic says the content is the same (``restic diff``: not ``M``/``T``/``+``);
  null in rows indexed before this revision (diff then asks restic, history counts them).
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column(
        "snapshots", sa.Column("pinned", sa.Boolean(), nullable=False, server_default="false")
    )
    op.add_column("snapshots", sa.Column("pinned_until", sa.DateTime(timezone=True), nullable=True))
    op.add_column("snapshots", sa.Column("pin_note", sa.Text(), nullable=True))
    op.add_column("snapshots", sa.Column("pinned_at", sa.DateTime(timezone=True), nullable=True))
    op.add_column("snapshots", sa.Column("pinned_by", sa.String(length=64), nullable=True))
    op.create_index(
        "ix_snapshots_pinned",
        "snapshots",
        ["pod_id", "plan"],
        postgresql_where=sa.text("pinned"),
    )
    op.add_column("snapshot_files", sa.Column("content_id", sa.String(length=32), nullable=True))


def downgrade() -> None:
    op.drop_column("snapshot_files", "content_id")
    op.drop_index("ix_snapshots_pinned", table_name="snapshots")
    for column in ("pinned_by", "pinned_at", "pin_note", "pinned_until", "pinned"):
        op.drop_column("snapshots", column)
