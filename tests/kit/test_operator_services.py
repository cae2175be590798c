"""The worker's metrics listener is one of the operator's services the address policy
keeps tenants away from, on whichever address it listens."""

from __future__ import annotations

import pytest

from app.config import Settings
from app.kit.netpolicy import operator_services


@pytest.mark.parametrize(
    ("host", "expected"),
    [
        ("127.0.0.1", {"127.0.0.1"}),
        ("0.0.0.0", {"127.0.0.1"}),
        ("10.20.30.40", {"127.0.0.1", "10.20.30.40"}),
    ],
)
def test_worker_metrics_address_is_protected(host: str, expected: set[str]) -> None:
    settings = Settings(
        _env_file=None,  # type: ignore[call-arg]
        worker_metrics_port=9108,
        worker_metrics_host=host,
    )
    found = {s.host for s in operator_services(settings) if s.port == 9108}
    assert found == expected
