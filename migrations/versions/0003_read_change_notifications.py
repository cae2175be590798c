"""notify API processes when a row behind a polled read changes

Revision ID: 0003
Revises: 0002

Every insert, update and delete on the tables the status, job and snapshot-list reads come
from sends the ids it concerns (the pod's, and a job's own) on the channel
``podbackup_reads``, at commit. API processes keep those reads' answers until then
(app/kit/readcache.py).
"""

from __future__ import annotations

from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

TABLES = ("pods", "backup_settings", "plan_states", "jobs", "snapshots", "repo_size_samples")

FUNCTION = """
CREATE OR REPLACE FUNCTION podbackup_notify_read_change() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    ids text;
BEGIN
    IF TG_OP = 'DELETE' THEN
        IF TG_TABLE_NAME = 'pods' THEN
            ids := OLD.id::text;
        ELSIF TG_TABLE_NAME = 'jobs' THEN
            ids := concat_ws(' ', OLD.id::text, OLD.pod_id::text);
        ELSE
            ids := OLD.pod_id::text;
        END IF;
    ELSE
        IF TG_TABLE_NAME = 'pods' THEN
            ids := NEW.id::text;
        ELSIF TG_TABLE_NAME = 'jobs' THEN
            ids := concat_ws(' ', NEW.id::text, NEW.pod_id::text);
        ELSE
            ids := NEW.pod_id::text;
        END IF;
    END IF;
    IF ids IS NOT NULL AND ids <> '' THEN
        PERFORM pg_notify('podbackup_reads', ids);
    END IF;
    RETURN NULL;
END
$$;
"""


def upgrade() -> None:
    op.execute(FUNCTION)
    for table in TABLES:
        op.execute(
            f"CREATE TRIGGER {table}_read_change AFTER INSERT OR UPDATE OR DELETE ON {table} "
            "FOR EACH ROW EXECUTE FUNCTION podbackup_notify_read_change()"
        )


def downgrade() -> None:
    for table in TABLES:
        op.execute(f"DROP TRIGGER IF EXISTS {table}_read_change ON {table}")
    op.execute("DROP FUNCTION IF EXISTS podbackup_notify_read_change()")
