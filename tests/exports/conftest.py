"""The end-to-end fixtures of tests/backups (settings with local roots, a worker process,
SFTP, S3 and database servers), shared by the restore, export and snapshot tests."""

from tests.backups.conftest import settings, worker  # noqa: F401
from tests.fixtures.databases import mysql_pod, pg_cluster, pg_pod  # noqa: F401
from tests.fixtures.s3 import s3_bucket, s3_server  # noqa: F401
from tests.fixtures.sftp import sftp_server  # noqa: F401
