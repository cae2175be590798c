"""pod names unique per account

Revision ID: 0004
Revises: 0003

The README and the CLI name pods by name (`podbackup backup wiki`), so two pods of one
account may not share one. Databases made before this revision may hold such pairs: the
oldest pod of each keeps its name, and every later one is renamed `<name>-2`, `<name>-3`, …
(the first free suffix, the name cut to fit 200 characters), so the upgrade never fails on
existing data and no pod is lost; each rename is logged (NOTICE) with the pod's id. Ids are
untouched, so jobs, snapshots and repositories keep pointing at the same pod.
"""

from __future__ import annotations

from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

RENAME_DUPLICATES = """
DO $$
DECLARE
    dup record;
    n integer;
    candidate text;
BEGIN
    FOR dup IN
        SELECT id, account_id, name FROM (
            SELECT id, account_id, name,
                   row_number() OVER (PARTITION BY account_id, name
                                      ORDER BY created_at, id) AS rank
            FROM pods
        ) ranked
        WHERE rank > 1
        ORDER BY account_id, name, rank
    LOOP
        n := 2;
        LOOP
            candidate := left(dup.name, 200 - length('-' || n)) || '-' || n;
            EXIT WHEN NOT EXISTS (
                SELECT 1 FROM pods WHERE account_id = dup.account_id AND name = candidate
            );
            n := n + 1;
        END LOOP;
        UPDATE pods SET name = candidate WHERE id = dup.id;
        RAISE NOTICE 'pod % renamed from % to % (pod names are unique per account)',
            dup.id, dup.name, candidate;
    END LOOP;
END
$$;
"""


def upgrade() -> None:
    # Serialise against pods created while this runs (another process's old code).
    op.execute("LOCK TABLE pods IN SHARE ROW EXCLUSIVE MODE")
    op.execute(RENAME_DUPLICATES)
    op.create_index(op.f("uq_pods_account_id_name"), "pods", ["account_id", "name"], unique=True)


def downgrade() -> None:
    # The renamed pods keep their new names: the old ones were ambiguous.
    op.drop_index(op.f("uq_pods_account_id_name"), table_name="pods")
