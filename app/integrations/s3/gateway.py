"""A re-signing S3 gateway: one restic process reads a repository with another key.

restic opens both repositories of `copy` (and of ``init --copy-chunker-params``) with one
set of AWS_* variables (0.14 to 0.18 read no per-repository S3 credentials). When the
second copy's key differs from the primary's, restic keeps the copy's key for the copy and
reaches the primary through this gateway instead: an HTTP server on 127.0.0.1 (a random
port) that takes restic's requests for the source repository, drops their signature and
signs them again with the primary's key before forwarding them to the primary's endpoint.

- **The token is the bearer.** restic gets ``s3:http://127.0.0.1:<port>/<token>[/<prefix>]``
  (by environment, never argv): ``<token>`` is a random 32-character bucket name. A request
  whose first path segment is not the token is refused (403) and never forwarded.
- **Least privilege.** GET/HEAD of objects and bucket listings; PUT/DELETE only of lock
  files (``<prefix>/locks/<64 hex>``: restic locks the source while it reads it); anything
  else is refused with an S3-style ``AccessDenied``.
- **The outbound policy** applies to every connection to the primary, as for the service's
  own S3 client: the name resolved and checked (``PolicyResolver``), each socket checked
  before it connects (``socket_factory``), TLS verified against the real host name with
  the trust store restic itself would use (the system's, ``SSL_CERT_FILE`` honoured). A
  refusal answers 403 and is reported to ``on_refused`` (the caller stops restic).
- **Streaming.** Response bodies (pack files) are relayed chunk by chunk, Range requests
  passed through; only lock files (tiny) are read whole, to be signed.
"""

from __future__ import annotations

import hmac
import logging
import re
import secrets
import string
from collections.abc import Callable
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any
from urllib.parse import parse_qsl, unquote
from xml.sax.saxutils import escape

import aiohttp
from aiohttp import web
from botocore.auth import S3SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials
from yarl import URL

from app.integrations.s3 import errors as e
from app.integrations.s3.client import PolicyResolver, S3Access, socket_factory
from app.integrations.s3.connect import tls_context
from app.kit import netpolicy
from app.kit.logging import forget_secret, register_secret

log = logging.getLogger(__name__)

TOKEN_LENGTH = 32
_TOKEN_ALPHABET = string.ascii_lowercase + string.digits
MAX_LOCK_BODY = 1 << 20  # a lock file is a few hundred bytes
_LOCK_NAME = re.compile(r"[0-9a-f]{64}")
# Query parameters a bucket listing (and restic's region lookup) may carry.
_LISTING_PARAMS = frozenset(
    {
        "list-type",
        "prefix",
        "delimiter",
        "max-keys",
        "continuation-token",
        "start-after",
        "fetch-owner",
        "encoding-type",
        "marker",
        "location",
    }
)
# Request headers worth forwarding (the rest, signatures included, are dropped).
_FORWARDED = frozenset(
    {
        "range",
        "if-match",
        "if-none-match",
        "if-modified-since",
        "if-unmodified-since",
        "content-type",
        "content-md5",
        "x-amz-storage-class",
    }
)
_HOP = frozenset(
    {
        "connection",
        "keep-alive",
        "proxy-connection",
        "transfer-encoding",
        "te",
        "trailer",
        "upgrade",
        "content-length",
    }
)
_UPSTREAM_TIMEOUT = aiohttp.ClientTimeout(total=None, connect=15, sock_connect=15, sock_read=300)


def new_token() -> str:
    """32 lowercase letters and digits: a valid bucket name, ~165 bits of chance."""
    return "".join(secrets.choice(_TOKEN_ALPHABET) for _ in range(TOKEN_LENGTH))


class Refused(Exception):
    """A request the gateway does not forward: answered 403 AccessDenied."""


@dataclass
class S3Gateway:
    """``async with S3Gateway(access, prefix, policy) as gw:`` then give restic
    ``gw.repository_url`` as the source repository.

    ``access``: the primary's bucket and key; ``prefix``: the repository's folder in it
    ("" for the bucket root). ``forwarded`` records (method, key) of the requests sent on
    and ``refused`` the reasons of those that were not (no secrets in either)."""

    access: S3Access
    prefix: str
    policy: netpolicy.Policy
    on_refused: Callable[[str], None] | None = None
    forwarded: list[tuple[str, str]] = field(default_factory=list)
    refused: list[str] = field(default_factory=list)
    token: str = field(default_factory=new_token, repr=False)
    port: int = 0
    _runner: web.AppRunner | None = None
    _session: aiohttp.ClientSession | None = None

    @property
    def repository_url(self) -> str:
        tail = f"/{self.prefix.strip('/')}" if self.prefix.strip("/") else ""
        return f"s3:http://127.0.0.1:{self.port}/{self.token}{tail}"

    @property
    def lock_prefix(self) -> str:
        folder = self.prefix.strip("/")
        return f"{folder}/locks/" if folder else "locks/"

    async def __aenter__(self) -> S3Gateway:
        register_secret(self.token)
        connector = aiohttp.TCPConnector(
            resolver=PolicyResolver(self.policy),
            ssl=tls_context(),
            socket_factory=socket_factory(self.policy, await self.policy.service_map()),
            limit=16,
        )
        self._session = aiohttp.ClientSession(
            connector=connector,
            timeout=_UPSTREAM_TIMEOUT,
            auto_decompress=False,
            skip_auto_headers=("Accept-Encoding", "User-Agent", "Content-Type"),
            trust_env=False,  # no proxy from the environment: the policy decides
        )
        app = web.Application(client_max_size=MAX_LOCK_BODY)
        app.router.add_route("*", "/{tail:.*}", self._handle)
        # restic gone, a relay still waiting on the primary ends with the block; a
        # disconnecting client cancels its handler (and the upstream request) at once.
        self._runner = web.AppRunner(
            app,
            access_log=None,
            handle_signals=False,
            shutdown_timeout=2.0,
            handler_cancellation=True,
        )
        try:
            await self._runner.setup()
            site = web.TCPSite(self._runner, "127.0.0.1", 0)
            await site.start()
        except BaseException:
            await self._close()
            raise
        self.port = int(self._runner.addresses[0][1])
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self._close()

    async def _close(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
        if self._session is not None:
            await self._session.close()
        forget_secret(self.token)

    # -- one request -------------------------------------------------------------------

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        raw_path, _, query = request.raw_path.partition("?")
        parts = raw_path.split("/", 2)
        given = parts[1] if len(parts) > 1 else ""
        if not hmac.compare_digest(given.encode(), self.token.encode()):
            return self._deny("the request does not carry this gateway's token")
        encoded_key = parts[2] if len(parts) > 2 else ""
        key = unquote(encoded_key)
        try:
            self._allow(request.method, key, query)
        except Refused as refusal:
            return self._deny(str(refusal))
        body = b""
        if request.method == "PUT":
            try:
                body = await _lock_body(request)
            except Refused as refusal:
                return self._deny(str(refusal))
        log.debug("s3 gateway: %s %s", request.method, key or "(bucket)")
        return await self._forward(request, encoded_key, key, query, body)

    def _allow(self, method: str, key: str, query: str) -> None:
        names = {name for name, _ in parse_qsl(query, keep_blank_values=True)}
        if any(segment in (".", "..") for segment in key.split("/")) or "\\" in key:
            raise Refused("a key with dot segments could leave the bucket on some servers")
        if method in ("GET", "HEAD"):
            if not key:
                if names - _LISTING_PARAMS:
                    raise Refused("only listing the bucket is allowed at the bucket level")
                return
            if names:
                raise Refused("object requests carry no sub-resource here")
            return
        if method in ("PUT", "DELETE"):
            name = key[len(self.lock_prefix) :] if key.startswith(self.lock_prefix) else ""
            if not _LOCK_NAME.fullmatch(name) or names:
                raise Refused(f"{method} is allowed only for the repository's lock files")
            return
        raise Refused(f"{method} is not allowed through this gateway")

    def _deny(self, why: str) -> web.Response:
        self.refused.append(why)
        log.debug("s3 gateway refused a request: %s", why)
        return _s3_error(403, "AccessDenied", why)

    def _upstream_url(self, encoded_key: str, query: str) -> str:
        endpoint = self.access.endpoint_url.rstrip("/")
        scheme, _, host = endpoint.partition("://")
        if self.access.path_style:
            url = f"{endpoint}/{self.access.bucket}/{encoded_key}"
        else:
            url = f"{scheme}://{self.access.bucket}.{host}/{encoded_key}"
        return f"{url}?{query}" if query else url

    def _signed_headers(self, request: web.Request, url: str, body: bytes) -> dict[str, str]:
        headers = {k: v for k, v in request.headers.items() if _forwarded(k)}
        aws = AWSRequest(method=request.method, url=url, headers=headers, data=body or None)
        credentials = Credentials(self.access.access_key_id, self.access.secret_access_key)
        _Signer(credentials, "s3", self.access.region).add_auth(aws)
        return dict(aws.headers.items())

    async def _forward(
        self, request: web.Request, encoded_key: str, key: str, query: str, body: bytes
    ) -> web.StreamResponse:
        assert self._session is not None
        url = self._upstream_url(encoded_key, query)
        headers = self._signed_headers(request, url, body)
        try:
            upstream = await self._session.request(
                request.method,
                URL(url, encoded=True),
                headers=headers,
                data=body if request.method == "PUT" else None,
                allow_redirects=False,
            )
        except (aiohttp.ClientError, OSError, TimeoutError) as exc:
            refusal = _refusal_in(exc)
            if refusal is not None:
                self.refused.append(refusal)
                log.warning("s3 gateway: the outbound policy refused the primary: %s", refusal)
                if self.on_refused is not None:
                    self.on_refused(refusal)
                return _s3_error(403, "AccessDenied", refusal)
            reason = type(exc).__name__
            log.info("s3 gateway: %s %s failed upstream: %s", request.method, key, reason)
            return _s3_error(502, "BadGateway", f"the primary's endpoint failed: {reason}")
        self.forwarded.append((request.method, key))
        async with upstream:
            response = web.StreamResponse(status=upstream.status, reason=upstream.reason)
            for name, value in upstream.headers.items():
                if name.lower() not in _HOP:
                    response.headers.add(name, value)
            length = upstream.headers.get("Content-Length")
            if length is not None and length.isdigit():
                response.content_length = int(length)
            await response.prepare(request)
            if request.method != "HEAD":
                async for chunk in upstream.content.iter_chunked(1 << 16):
                    await response.write(chunk)
            await response.write_eof()
        return response


class _Signer(S3SigV4Auth):
    """SigV4 for S3, the payload's hash always in the signature (lock bodies are small;
    every other request has none)."""

    def _should_sha256_sign_payload(self, request: Any) -> bool:
        return True


def _forwarded(name: str) -> bool:
    low = name.lower()
    return low in _FORWARDED or low.startswith("x-amz-meta-")


async def _lock_body(request: web.Request) -> bytes:
    """A lock file's bytes, decoded when restic sent them ``aws-chunked`` (minio-go does
    over plain http: STREAMING-AWS4-HMAC-SHA256-PAYLOAD)."""
    if request.content_length is not None and request.content_length > MAX_LOCK_BODY:
        raise Refused("a lock file is at most 1 MiB")
    raw = bytearray()
    async for chunk in request.content.iter_chunked(1 << 16):
        raw += chunk
        if len(raw) > MAX_LOCK_BODY:
            raise Refused("a lock file is at most 1 MiB")
    sha = request.headers.get("x-amz-content-sha256", "")
    encoding = request.headers.get("Content-Encoding", "")
    if sha.startswith("STREAMING-") or "aws-chunked" in encoding:
        return _decode_aws_chunked(bytes(raw))
    return bytes(raw)


def _decode_aws_chunked(raw: bytes) -> bytes:
    """The payload of an ``aws-chunked`` body: ``<hex size>[;chunk-signature=…]\\r\\n<data>
    \\r\\n`` until a chunk of size 0 (trailers after it are dropped)."""
    out = bytearray()
    at = 0
    while True:
        end = raw.find(b"\r\n", at)
        if end < 0:
            raise Refused("a malformed aws-chunked body")
        try:
            size = int(raw[at:end].split(b";", 1)[0].strip(), 16)
        except ValueError:
            raise Refused("a malformed aws-chunked body") from None
        at = end + 2
        if size == 0:
            return bytes(out)
        if at + size + 2 > len(raw) or raw[at + size : at + size + 2] != b"\r\n":
            raise Refused("a malformed aws-chunked body")
        out += raw[at : at + size]
        at += size + 2


def _refusal_in(exc: BaseException) -> str | None:
    """The outbound policy's refusal somewhere in an aiohttp connection error, if any."""
    seen: set[int] = set()
    todo: list[BaseException | None] = [exc]
    while todo:
        current = todo.pop()
        if current is None or id(current) in seen:
            continue
        seen.add(id(current))
        if isinstance(current, e.AddressRefusedError):
            return str(current)
        todo += [current.__cause__, current.__context__, getattr(current, "os_error", None)]
    return None


def _s3_error(status: int, code: str, message: str) -> web.Response:
    body = (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        f"<Error><Code>{code}</Code><Message>{escape(message)}</Message></Error>"
    )
    return web.Response(status=status, text=body, content_type="application/xml")


def needs_gateway(repo_env: dict[str, str], source_env: dict[str, str]) -> bool:
    """Two S3 repositories restic cannot open with one set of AWS_* variables: another
    key, or another signing region."""
    if not repo_env or not source_env:
        return False  # one side is a local folder: the other's key is the only one
    names = ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_DEFAULT_REGION")
    return any(repo_env.get(n) != source_env.get(n) for n in names)
