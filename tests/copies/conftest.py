"""The end-to-end fixtures of tests/backups (a worker process, the local S3 server) and a
webhook receiver (the copy lag alert)."""

from tests.backups.conftest import settings, worker  # noqa: F401
from tests.fixtures.s3 import s3_bucket, s3_iam_server, s3_server  # noqa: F401
from tests.webhooks.conftest import receiver, services  # noqa: F401
