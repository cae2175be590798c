from __future__ import annotations

from tests.fixtures.databases import pg_cluster, pg_pod  # noqa: F401
from tests.fixtures.s3 import s3_bucket, s3_server  # noqa: F401
from tests.fixtures.sftp import sftp_server  # noqa: F401
from tests.retention.fixtures import settings, worker  # noqa: F401
from tests.webhooks.conftest import receiver, services  # noqa: F401
