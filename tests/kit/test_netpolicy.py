from __future__ import annotations

import ipaddress

import pytest

from app.kit.netpolicy import (
    OutboundAddressRefused,
    Policy,
    check_before_connect,
    check_on_save,
)


@pytest.mark.parametrize(
    ("addr", "why"),
    [
        ("127.0.0.1", "loopback"),
        ("::1", "loopback"),
        ("10.1.2.3", "private"),
        ("172.16.0.1", "private"),
        ("192.168.0.1", "private"),
        ("100.64.0.1", "private"),
        ("fd12::1", "private"),
        ("169.254.169.254", "metadata"),
        ("fd00:ec2::254", "metadata"),
        ("169.254.1.1", "link-local"),
        ("fe80::1", "link-local"),
        ("224.0.0.1", "multicast"),
        ("0.0.0.0", "unspecified"),
        ("::ffff:10.0.0.1", "private"),
        ("240.0.0.1", "reserved"),
    ],
)
def test_refused_addresses(addr: str, why: str) -> None:
    reason = Policy().refusal(ipaddress.ip_address(addr))
    assert reason is not None
    assert why in reason


def test_public_and_allow_listed() -> None:
    assert Policy().refusal(ipaddress.ip_address("93.184.216.34")) is None
    assert Policy().refusal(ipaddress.ip_address("2606:4700::1111")) is None
    allowed = Policy.from_settings(["127.0.0.0/8"])
    assert allowed.refusal(ipaddress.ip_address("127.0.0.1")) is None
    assert allowed.refusal(ipaddress.ip_address("10.0.0.1")) is not None


async def test_names_are_resolved_before_deciding() -> None:
    with pytest.raises(OutboundAddressRefused):
        await check_on_save(Policy(), "host", "localhost")
    with pytest.raises(OutboundAddressRefused):
        await check_on_save(Policy(), "host", "metadata.google.internal")
    await check_on_save(Policy(), "host", "does-not-exist.invalid")  # accepted on save
    addrs = await check_before_connect(
        Policy.from_settings(["127.0.0.0/8", "::1/128"]), "localhost"
    )
    assert addrs
