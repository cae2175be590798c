"""An egress proxy for child processes that dial out by themselves (restic).

restic resolves the endpoint's name itself, after any check of ours, so a name that
answers a public address to the check and a refused one to restic (DNS rebinding) would
pass. restic (Go's net/http) honours ``HTTPS_PROXY``/``HTTP_PROXY``: pointed at this proxy
on 127.0.0.1, it hands every connection to us. The proxy resolves the name once, checks
every address with the outbound-address policy and the operator's own servers, connects
to the checked address and confirms the peer it got; a refusal answers 403 and is
reported to the caller, which stops the child at once.

It serves ``CONNECT host:port`` (https endpoints: a byte tunnel, TLS stays end to end)
and absolute-form plain-http requests (development endpoints inside the allow-list):
one request per connection, answered with ``Connection: close`` so the client never
sends a second request, possibly for another host, down a checked connection.

Go sends requests for ``localhost`` and loopback IP literals directly, past any proxy
(``golang.org/x/net/http/httpproxy``): ``check_direct`` checks such an endpoint before
the child starts; a literal cannot be re-pointed and ``localhost`` is the machine's own.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from types import TracebackType
from urllib.parse import urlsplit

from app.kit import netpolicy

log = logging.getLogger(__name__)

_HEAD_TIMEOUT = 60.0
_CONNECT_TIMEOUT = 15.0
_HOP_HEADERS = {b"connection", b"proxy-connection", b"proxy-authorization", b"keep-alive"}


class EgressRefused(Exception):
    """The policy refused an address the child wanted to reach."""


@dataclass
class Dialled:
    host: str
    port: int
    address: str


@dataclass
class EgressProxy:
    """``async with EgressProxy(policy) as proxy:`` then give the child ``proxy.env()``."""

    policy: netpolicy.Policy
    on_refused: Callable[[str], None] | None = None
    dialled: list[Dialled] = field(default_factory=list)  # what was reached, in order
    refusals: list[str] = field(default_factory=list)
    port: int = 0
    _server: asyncio.Server | None = None
    _tasks: set[asyncio.Task[None]] = field(default_factory=set)

    async def __aenter__(self) -> EgressProxy:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.port = int(self._server.sockets[0].getsockname()[1])
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._server is not None:
            self._server.close()
        for task in list(self._tasks):
            task.cancel()
        for task in list(self._tasks):
            with contextlib.suppress(BaseException):
                await task
        if self._server is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._server.wait_closed(), 2)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def env(self) -> dict[str, str]:
        """The child's proxy variables; NO_PROXY empty so no name is sent around it."""
        return {
            "HTTPS_PROXY": self.url,
            "HTTP_PROXY": self.url,
            "https_proxy": self.url,
            "http_proxy": self.url,
            "NO_PROXY": "",
            "no_proxy": "",
        }

    # -- serving -----------------------------------------------------------------------

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        try:
            await self._one(reader, writer)
        except (
            OSError,
            TimeoutError,
            asyncio.IncompleteReadError,
            asyncio.LimitOverrunError,
            ValueError,
            IndexError,
        ):
            pass  # a side that went away, or spoke something that is not HTTP
        except Exception:
            log.exception("egress proxy: unexpected failure")
        finally:
            self._tasks.discard(task)
            writer.close()

    async def _one(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), _HEAD_TIMEOUT)
        request_line, _, rest = head.partition(b"\r\n")
        parts = request_line.split(b" ")
        if len(parts) != 3:
            await _answer(writer, 400, "not an HTTP request")
            return
        method, target, version = (p.decode("latin-1") for p in parts)
        if method == "CONNECT":
            await self._tunnel(target, reader, writer)
        else:
            await self._forward(method, target, version, rest, reader, writer)

    async def _dial(
        self, host: str, port: int, writer: asyncio.StreamWriter
    ) -> tuple[asyncio.StreamReader, asyncio.StreamWriter] | None:
        """Connect to a checked address of ``host``; on refusal answer the client."""
        try:
            addrs = await netpolicy.check_before_connect(self.policy, host, port, "endpoint")
        except netpolicy.OutboundAddressRefused as exc:
            self._refused(exc.message)
            await _answer(writer, 403, exc.message)
            return None
        except netpolicy.HostUnresolvable as exc:
            await _answer(writer, 502, str(exc))
            return None
        services = await self.policy.service_map()
        last = "no address"
        for addr in addrs:
            try:
                up_reader, up_writer = await asyncio.wait_for(
                    asyncio.open_connection(str(addr), port), _CONNECT_TIMEOUT
                )
            except (OSError, TimeoutError) as exc:
                last = f"{addr}: {exc.strerror if isinstance(exc, OSError) else 'timeout'}"
                continue
            peer = ipaddress.ip_address(str(up_writer.get_extra_info("peername")[0]))
            why = self.policy.refusal(peer) or services.refusal(peer, port)
            if peer != addr or why:  # never expected: the peer is the address dialled
                up_writer.close()
                message = f"connected to {peer}, not the checked {addr}"
                self._refused(message)
                await _answer(writer, 403, message)
                return None
            self.dialled.append(Dialled(host, port, str(peer)))
            log.debug("egress: '%s' port %d via %s", host, port, peer)
            return up_reader, up_writer
        await _answer(writer, 502, f"could not connect to '{host}' port {port} ({last})")
        return None

    def _refused(self, message: str) -> None:
        log.warning("egress refused: %s", message)
        self.refusals.append(message)
        if self.on_refused is not None:
            self.on_refused(message)

    async def _tunnel(
        self, target: str, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        hostport = _host_port(f"//{target}", default_port=None)
        if hostport is None:
            await _answer(writer, 400, f"'{target}' is not host:port")
            return
        upstream = await self._dial(*hostport, writer)
        if upstream is None:
            return
        up_reader, up_writer = upstream
        writer.write(b"HTTP/1.1 200 Connection Established\r\n\r\n")
        await writer.drain()
        await _both_ways(reader, writer, up_reader, up_writer)

    async def _forward(
        self,
        method: str,
        target: str,
        version: str,
        rest: bytes,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
    ) -> None:
        if not target.lower().startswith("http://"):
            await _answer(writer, 400, "only absolute http:// requests and CONNECT are served")
            return
        hostport = _host_port(target, default_port=80)
        if hostport is None:
            await _answer(writer, 400, "the request names no host")
            return
        upstream = await self._dial(*hostport, writer)
        if upstream is None:
            return
        up_reader, up_writer = upstream
        split = urlsplit(target)
        path = (split.path or "/") + (f"?{split.query}" if split.query else "")
        headers = [
            line
            for line in rest.split(b"\r\n")
            if line and line.split(b":", 1)[0].strip().lower() not in _HOP_HEADERS
        ]
        up_writer.write(
            f"{method} {path} {version}\r\n".encode("latin-1")
            + b"".join(h + b"\r\n" for h in headers)
            + b"Connection: close\r\n\r\n"
        )
        await up_writer.drain()
        body = asyncio.create_task(_pipe(reader, up_writer, close=False))
        try:
            await _response(method, up_reader, writer)
        finally:
            body.cancel()
            with contextlib.suppress(BaseException):
                await body
            up_writer.close()


def _host_port(url: str, default_port: int | None) -> tuple[str, int] | None:
    try:
        parts = urlsplit(url)
        host, port = parts.hostname, parts.port or default_port
    except ValueError:
        return None
    if not host or not port:
        return None
    return host, port


async def _answer(writer: asyncio.StreamWriter, status: int, message: str) -> None:
    reason = {400: "Bad Request", 403: "Forbidden", 502: "Bad Gateway"}[status]
    body = f"podbackup egress: {message}\n".encode()
    writer.write(
        f"HTTP/1.1 {status} {reason}\r\nContent-Type: text/plain; charset=utf-8\r\n"
        f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n".encode()
        + body
    )
    with contextlib.suppress(OSError):
        await writer.drain()


async def _pipe(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, *, close: bool = True
) -> None:
    try:
        while data := await reader.read(1 << 16):
            writer.write(data)
            await writer.drain()
    except OSError:
        pass
    finally:
        if close:
            writer.close()


async def _both_ways(
    reader: asyncio.StreamReader,
    writer: asyncio.StreamWriter,
    up_reader: asyncio.StreamReader,
    up_writer: asyncio.StreamWriter,
) -> None:
    tasks = [
        asyncio.create_task(_pipe(reader, up_writer)),
        asyncio.create_task(_pipe(up_reader, writer)),
    ]
    try:
        await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(BaseException):
                await task
        up_writer.close()


async def _response(
    method: str, up_reader: asyncio.StreamReader, writer: asyncio.StreamWriter
) -> None:
    """Relay one response (after any 1xx), its Connection header set to close."""
    while True:
        head = await asyncio.wait_for(up_reader.readuntil(b"\r\n\r\n"), _HEAD_TIMEOUT * 10)
        status_line, _, rest = head.partition(b"\r\n")
        status = int(status_line.split(b" ")[1])
        if 100 <= status < 200 and status != 101:
            writer.write(head)
            await writer.drain()
            continue
        break
    lines = [ln for ln in rest.split(b"\r\n") if ln]
    fields = {ln.split(b":", 1)[0].strip().lower(): ln.split(b":", 1)[-1].strip() for ln in lines}
    kept = [ln for ln in lines if ln.split(b":", 1)[0].strip().lower() not in _HOP_HEADERS]
    writer.write(status_line + b"\r\n" + b"".join(h + b"\r\n" for h in kept))
    writer.write(b"Connection: close\r\n\r\n")
    await writer.drain()
    if method == "HEAD" or status in (204, 304):
        return
    if b"chunked" in fields.get(b"transfer-encoding", b"").lower():
        await _chunks(up_reader, writer)
    elif b"content-length" in fields:
        left = int(fields[b"content-length"])
        while left > 0:
            data = await up_reader.read(min(left, 1 << 16))
            if not data:
                raise asyncio.IncompleteReadError(b"", left)
            writer.write(data)
            await writer.drain()
            left -= len(data)
    else:
        await _pipe(up_reader, writer, close=False)


async def _chunks(up_reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    while True:
        line = await up_reader.readuntil(b"\r\n")
        writer.write(line)
        size = int(line.split(b";", 1)[0].strip(), 16)
        if size == 0:
            while (trailer := await up_reader.readuntil(b"\r\n")) != b"\r\n":
                writer.write(trailer)
            writer.write(b"\r\n")
            await writer.drain()
            return
        writer.write(await up_reader.readexactly(size + 2))
        await writer.drain()


async def check_direct(policy: netpolicy.Policy, url: str) -> None:
    """Check an endpoint Go would reach without the proxy (``localhost``, a loopback IP
    literal); raise ``EgressRefused`` when the policy refuses it."""
    hostport = _host_port(url, default_port=443 if url.lower().startswith("https") else 80)
    if hostport is None:
        return
    host, port = hostport
    if host.rstrip(".") != "localhost" and netpolicy.parse_ip(host) is None:
        return  # a name: the proxy sees it (an IP literal cannot be re-pointed)
    try:
        await netpolicy.check_before_connect(policy, host, port, "endpoint")
    except netpolicy.OutboundAddressRefused as exc:
        raise EgressRefused(exc.message) from None
    except netpolicy.HostUnresolvable:
        return
