"""The end-to-end fixtures of tests/backups (settings with local roots, a worker process,
a PostgreSQL pod database), shared by the diff and history tests."""

from tests.backups.conftest import settings, worker  # noqa: F401
from tests.fixtures.databases import pg_cluster, pg_pod  # noqa: F401
