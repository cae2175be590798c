"""Outbound-address policy for every user-supplied host (SFTP, databases, S3, webhooks).

Loopback, private, link-local, multicast, reserved and cloud-metadata addresses are
refused unless the operator allow-lists a network (``PODBACKUP_ALLOW_NETWORKS``).
Names are resolved before deciding. The check runs when a value is saved and again
right before every connection, since a name can be re-pointed in between.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from app.errors import ValidationFailed

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

_METADATA = {
    ipaddress.ip_address("169.254.169.254"),  # AWS, GCP, Azure, OCI, DigitalOcean
    ipaddress.ip_address("169.254.170.2"),  # AWS ECS task metadata
    ipaddress.ip_address("100.100.100.200"),  # Alibaba Cloud
    ipaddress.ip_address("fd00:ec2::254"),  # AWS IMDS over IPv6
}
_METADATA_NAMES = {"metadata.google.internal", "metadata", "instance-data"}
_METADATA_HINT = "use the public hostname of your server, not the cloud's metadata service"


class OutboundAddressRefused(ValidationFailed):
    """A user-supplied host points at an address this service must not reach.

    ``code`` makes it a coded failure for jobs too (a refusal at connect time is the
    owner's to fix, not an internal error)."""

    code = "address_refused"


class HostUnresolvable(Exception):
    """A name did not resolve (reported by verification and jobs, not on save)."""


@dataclass(frozen=True)
class Policy:
    allow: tuple[IPNetwork, ...] = ()

    @classmethod
    def from_settings(cls, networks: Iterable[str]) -> Policy:
        return cls(allow=tuple(ipaddress.ip_network(n, strict=False) for n in networks))

    def refusal(self, addr: IPAddress) -> str | None:
        """Why ``addr`` is refused, or None when it may be reached."""
        if isinstance(addr, ipaddress.IPv6Address) and addr.ipv4_mapped is not None:
            addr = addr.ipv4_mapped
        if any(addr in net for net in self.allow):
            return None
        if addr in _METADATA:
            return "a cloud metadata address"
        if addr.is_loopback:
            return "a loopback address"
        if addr.is_link_local:
            return "a link-local address"
        if addr.is_multicast:
            return "a multicast address"
        if addr.is_unspecified:
            return "an unspecified address"
        if addr.is_reserved:
            return "a reserved address"
        if addr.is_private or (
            isinstance(addr, ipaddress.IPv4Address)
            and addr in ipaddress.ip_network("100.64.0.0/10")
        ):
            return "a private-network address"
        if not addr.is_global:
            return "a reserved address"
        return None


def parse_ip(host: str) -> IPAddress | None:
    try:
        return ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return None


async def resolve(host: str, port: int | None = None) -> list[IPAddress]:
    """All addresses ``host`` resolves to right now; raises HostUnresolvable."""
    literal = parse_ip(host)
    if literal is not None:
        return [literal]
    loop = asyncio.get_running_loop()
    try:
        infos = await asyncio.wait_for(
            loop.getaddrinfo(host, port, type=socket.SOCK_STREAM), timeout=5
        )
    except (OSError, TimeoutError, UnicodeError) as exc:
        raise HostUnresolvable(f"the name '{host}' does not resolve") from exc
    addrs: list[IPAddress] = []
    for info in infos:
        ip = ipaddress.ip_address(str(info[4][0]).split("%", 1)[0])
        if ip not in addrs:
            addrs.append(ip)
    if not addrs:
        raise HostUnresolvable(f"the name '{host}' does not resolve")
    return addrs


def _refuse(field: str, host: str, addr: IPAddress, why: str) -> OutboundAddressRefused:
    shown = host if str(addr) == host.strip("[]") else f"{host} ({addr})"
    return OutboundAddressRefused(
        field,
        f"'{shown}' is {why}; this service does not connect to it",
        hint=(
            "use the public hostname of the server; an operator can allow a network "
            "with PODBACKUP_ALLOW_NETWORKS"
        ),
    )


async def check_on_save(policy: Policy, field: str, host: str) -> None:
    """Refuse an IP literal or a resolvable name that points at a refused address.

    A name that does not resolve now is accepted: verification and jobs report it.
    """
    if host.lower().rstrip(".") in _METADATA_NAMES:
        raise OutboundAddressRefused(
            field,
            f"'{host}' is a cloud metadata name; this service does not connect to it",
            hint=_METADATA_HINT,
        )
    try:
        addrs = await resolve(host)
    except HostUnresolvable:
        return
    for addr in addrs:
        why = policy.refusal(addr)
        if why:
            raise _refuse(field, host, addr, why)


async def check_before_connect(
    policy: Policy, host: str, port: int | None = None, field: str = "host"
) -> list[IPAddress]:
    """Resolve and check ``host``; return the addresses to connect to (connect to these,
    not to the name, so a re-pointed name cannot slip past the check)."""
    if host.lower().rstrip(".") in _METADATA_NAMES:
        raise OutboundAddressRefused(
            field, f"'{host}' is a cloud metadata name", hint=_METADATA_HINT
        )
    addrs = await resolve(host, port)
    for addr in addrs:
        why = policy.refusal(addr)
        if why:
            raise _refuse(field, host, addr, why)
    return addrs


def networks_text(nets: Sequence[IPNetwork]) -> str:
    return ", ".join(str(n) for n in nets) or "none"
