"""app.integrations.hooks.post_signed (shared with pod stop/start hooks) against a receiver."""

from __future__ import annotations

import ipaddress
from urllib.parse import urlsplit

import pytest

from app.integrations import hooks
from app.kit import netpolicy
from tests.webhooks.conftest import Receiver

LOOPBACK = netpolicy.Policy.from_settings(["127.0.0.0/8"])


async def test_pod_hook_call_is_signed_and_checks_the_answer(receiver: Receiver) -> None:
    url = receiver.url("/stop", host="localhost")
    await hooks.call(url, "stop", {"pod_id": "p1"}, secret=b"k" * 32, policy=LOOPBACK, timeout=5)
    [got] = receiver.requests
    assert got.headers["host"] == f"localhost:{receiver.port}"
    expected = hooks.sign(b"k" * 32, got.headers["x-podbackup-timestamp"], got.body)
    assert got.headers["x-podbackup-signature"] == expected

    receiver.plan = [(500, {})]
    with pytest.raises(hooks.HookError) as err:
        await hooks.call(url, "stop", {}, secret=b"k" * 32, policy=LOOPBACK, timeout=5)
    assert err.value.message == "the stop hook answered 500"

    with pytest.raises(netpolicy.OutboundAddressRefused):
        await hooks.call(url, "stop", {}, secret=b"k", policy=netpolicy.Policy(), timeout=5)
    assert len(receiver.requests) == 2


@pytest.mark.parametrize(
    ("url", "addr", "expected"),
    [
        ("https://h.example.com/a/b?x=1", "93.184.216.34", "https://93.184.216.34/a/b?x=1"),
        ("http://h.example.com:8080/", "2001:db8::5", "http://[2001:db8::5]:8080/"),
    ],
)
def test_pinned_url_keeps_path_query_and_port(url: str, addr: str, expected: str) -> None:
    assert hooks._with_address(urlsplit(url), ipaddress.ip_address(addr)) == expected
