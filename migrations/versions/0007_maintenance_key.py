"""lock mode's maintenance key

Revision ID: 0007
Revises: 0006

- ``backup_settings.maintenance_secret``: the S3 secret of the maintenance key (the one that
  may delete) of a target in lock mode, sealed like ``target_secret`` (context
  ``pod:<id>:maintenance``); null when there is none. Its key id and the lock period live in
  the ``target`` JSON (``lock_days``, ``maintenance_access_key_id``), which older rows lack.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("backup_settings", sa.Column("maintenance_secret", sa.Text(), nullable=True))


def downgrade() -> None:
    op.drop_column("backup_settings", "maintenance_secret")
