from __future__ import annotations

from tests.fixtures.s3 import s3_iam_server, s3_server  # noqa: F401
from tests.retention.fixtures import settings, worker  # noqa: F401
from tests.targets.test_verify_network import tls_server  # noqa: F401
from tests.webhooks.conftest import receiver, services  # noqa: F401
