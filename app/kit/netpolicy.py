"""Outbound-address policy for every user-supplied host (SFTP, databases, S3, webhooks).

Loopback, private, link-local, multicast, reserved and cloud-metadata addresses are
refused unless the operator allow-lists a network (``PODBACKUP_ALLOW_NETWORKS``).
Names are resolved before deciding. The check runs when a value is saved and again
right before every connection, since a name can be re-pointed in between.

IPv6 forms that carry an IPv4 address (IPv4-mapped and -compatible, 6to4, Teredo, NAT64)
are judged by that address too. The operator's own services (the control database,
Redis, the drill servers, a private platform or export storage) are refused at their address and
port whatever the allow-list says: allow-listing the network they live in must not open
them to tenants (``PODBACKUP_ALLOW_OPERATOR_SERVICES`` lifts this for development).
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from urllib.parse import urlsplit

from app.config import Settings
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


_NAT64 = (ipaddress.ip_network("64:ff9b::/96"), ipaddress.ip_network("64:ff9b:1::/48"))
_IPV4_COMPATIBLE = ipaddress.ip_network("::/96")


def embedded_ipv4(addr: ipaddress.IPv6Address) -> tuple[ipaddress.IPv4Address, str] | None:
    """The IPv4 address an IPv6 address carries, and the form's name, if it carries one."""
    if addr.ipv4_mapped is not None:
        return addr.ipv4_mapped, "IPv4-mapped"
    if addr.sixtofour is not None:
        return addr.sixtofour, "6to4"
    if addr.teredo is not None:
        return addr.teredo[1], "Teredo"
    low = ipaddress.IPv4Address(int(addr) & 0xFFFFFFFF)
    if any(addr in net for net in _NAT64):
        return low, "NAT64"
    if addr in _IPV4_COMPATIBLE and int(addr) > 1:
        return low, "IPv4-compatible"
    return None


@dataclass(frozen=True)
class Service:
    """One of the operator's own servers: refused at (address, port) to tenants."""

    what: str  # "the control database (PODBACKUP_DATABASE_URL)"
    host: str
    port: int
    private_only: bool = False  # refused only at a non-public address (shared S3 services)


_DEFAULT_PORTS = {
    "postgresql": 5432,
    "postgres": 5432,
    "redis": 6379,
    "rediss": 6379,
    "mysql": 3306,
    "mariadb": 3306,
    "http": 80,
    "https": 443,
}


def _service(what: str, url: str | None, private_only: bool = False) -> Service | None:
    if not url:
        return None
    try:
        parts = urlsplit(url)
        host, port = parts.hostname, parts.port
    except ValueError:
        return None
    port = port or _DEFAULT_PORTS.get(parts.scheme.split("+", 1)[0].lower())
    if not host or not port:
        return None  # a Unix socket: no network address to protect
    return Service(what, host, port, private_only)


def operator_services(settings: Settings) -> tuple[Service, ...]:
    """The servers this service itself uses, as its settings name them."""
    platform = settings.platform_repository or ""
    found = [
        _service("the control database (PODBACKUP_DATABASE_URL)", settings.database_url),
        _service("the job queue (PODBACKUP_REDIS_URL)", settings.redis_url),
        _service("a drill server (PODBACKUP_DRILL_POSTGRES_URL)", settings.drill_postgres_url),
        _service("a drill server (PODBACKUP_DRILL_MYSQL_URL)", settings.drill_mysql_url),
        _service(
            "the platform storage (PODBACKUP_PLATFORM_REPOSITORY)",
            platform[3:] if platform.startswith("s3:") else None,
            private_only=True,
        ),
        _service(
            "the export store (PODBACKUP_EXPORT_S3_ENDPOINT)",
            settings.export_s3_endpoint,
            private_only=True,
        ),
    ]
    if settings.worker_metrics_port:
        for host in {"127.0.0.1", settings.worker_metrics_host} - {"0.0.0.0", "::"}:
            found.append(Service("the worker's metrics", host, settings.worker_metrics_port))
    return tuple(s for s in found if s is not None)


_SERVICE_TTL = 30.0
_service_cache: dict[str, tuple[float, tuple[IPAddress, ...]]] = {}


async def _service_addresses(host: str) -> tuple[IPAddress, ...]:
    now = time.monotonic()
    cached = _service_cache.get(host)
    if cached is not None and cached[0] > now:
        return cached[1]
    try:
        addrs = tuple(await resolve(host))
    except HostUnresolvable:
        addrs = ()
    _service_cache[host] = (now + _SERVICE_TTL, addrs)
    return addrs


def _plain(addr: IPAddress) -> IPAddress:
    if isinstance(addr, ipaddress.IPv6Address) and addr.ipv4_mapped is not None:
        return addr.ipv4_mapped
    return addr


@dataclass(frozen=True)
class ServiceMap:
    """The operator's services by resolved (address, port), for synchronous checks."""

    at: dict[tuple[IPAddress, int], Service]

    def refusal(self, addr: IPAddress, port: int | None) -> str | None:
        if port is None:
            return None
        service = self.at.get((_plain(addr), port))
        if service is None or (service.private_only and _plain(addr).is_global):
            return None
        return service.what


@dataclass(frozen=True)
class Policy:
    allow: tuple[IPNetwork, ...] = ()
    services: tuple[Service, ...] = ()

    @classmethod
    def from_settings(cls, settings: Settings | Iterable[str]) -> Policy:
        """The policy of ``settings`` (allow-list and the operator's services); a bare
        list of networks gives an allow-list alone (tests of the address rules)."""
        if isinstance(settings, Settings):
            services = () if settings.allow_operator_services else operator_services(settings)
            return cls(allow=_networks(settings.allow_networks), services=services)
        return cls(allow=_networks(settings))

    async def service_map(self) -> ServiceMap:
        """The operator's services resolved now (cached for a short while)."""
        at: dict[tuple[IPAddress, int], Service] = {}
        for service in self.services:
            for addr in await _service_addresses(service.host):
                at.setdefault((_plain(addr), service.port), service)
        return ServiceMap(at)

    def refusal(self, addr: IPAddress) -> str | None:
        """Why ``addr`` is refused, or None when it may be reached."""
        if isinstance(addr, ipaddress.IPv6Address) and not any(addr in n for n in self.allow):
            carried = embedded_ipv4(addr)
            if carried is not None:
                why = self._refusal(carried[0])
                if why is not None:
                    return f"{why} ({carried[0]} inside the {carried[1]} address)"
                if carried[1] == "IPv4-mapped":
                    return None  # the very IPv4 address, which may be reached
        return self._refusal(addr)

    def _refusal(self, addr: IPAddress) -> str | None:
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


def _networks(networks: Iterable[str]) -> tuple[IPNetwork, ...]:
    return tuple(ipaddress.ip_network(n, strict=False) for n in networks)


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
    # "localhost." is the same name as "localhost"; the resolver may not know it with the
    # final dot, and an unresolvable name is accepted on save.
    name = host[:-1] if host.endswith(".") and not host.endswith("..") else host
    loop = asyncio.get_running_loop()
    try:
        infos = await asyncio.wait_for(
            loop.getaddrinfo(name, port, type=socket.SOCK_STREAM), timeout=5
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


async def _check(
    policy: Policy, field: str, host: str, addrs: Sequence[IPAddress], port: int | None
) -> None:
    services = await policy.service_map() if policy.services and port else None
    for addr in addrs:
        why = policy.refusal(addr)
        if why:
            raise _refuse(field, host, addr, why)
        own = services.refusal(addr, port) if services is not None else None
        if own:
            raise service_refused(field, host, addr, port, own)


def service_refused(
    field: str, host: str, addr: IPAddress, port: int | None, what: str
) -> OutboundAddressRefused:
    shown = host if str(addr) == host.strip("[]") else f"{host} ({addr})"
    return OutboundAddressRefused(
        field,
        f"'{shown}' port {port} is {what}, one of this service's own servers; "
        "pods never reach them",
        hint="give your own server's address; the service's own servers are refused "
        "whatever PODBACKUP_ALLOW_NETWORKS allows",
    )


async def check_on_save(policy: Policy, field: str, host: str, port: int | None = None) -> None:
    """Refuse an IP literal or a resolvable name that points at a refused address (with
    ``port``, also the operator's own services there).

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
    await _check(policy, field, host, addrs, port)


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
    await _check(policy, field, host, addrs, port)
    return addrs


def plain_http_allowed(policy: Policy, addrs: Sequence[IPAddress]) -> bool:
    """Plain http only towards addresses the operator allow-listed (development hosts):
    bodies, signatures and keys must not cross other networks in clear."""
    return bool(addrs) and all(any(a in net for net in policy.allow) for a in addrs)


async def check_url_on_save(policy: Policy, field: str, url: str) -> None:
    """An http(s) URL someone else's server answers (hooks, webhooks): its host as in
    ``check_on_save``, and https unless the host is inside an allow-listed network."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    https = parts.scheme.lower() == "https"
    try:
        port = parts.port or (443 if https else 80)
    except ValueError:
        port = None
    await check_on_save(policy, field, host, port)
    if https:
        return
    refusal = ValidationFailed(
        field,
        f"plain http:// is only allowed for development hosts inside "
        f"PODBACKUP_ALLOW_NETWORKS; '{host}' is not one",
        hint="use an https:// URL: bodies and signatures must not cross networks in clear",
    )
    try:
        addrs = await resolve(host)
    except HostUnresolvable:
        raise refusal from None
    if not plain_http_allowed(policy, addrs):
        raise refusal


def networks_text(nets: Sequence[IPNetwork]) -> str:
    return ", ".join(str(n) for n in nets) or "none"
