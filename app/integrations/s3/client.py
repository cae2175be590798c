"""The only place that opens S3 connections (aiobotocore).

Every connection resolves its host through ``PolicyResolver``, and every socket is made
by a factory that checks the address it is about to dial (IP literals never reach a
resolver): the outbound-address policy and the operator's own servers apply to the
peer actually connected, so neither a name re-pointed after the settings were saved nor
an address written as a literal reaches a refused address. Redirects are never followed
(a 3xx comes back as an S3Failure), and proxies from the environment are ignored.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import functools
import hashlib
import ipaddress
import socket
import ssl
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import aiohttp
from aiobotocore.config import AioConfig
from aiobotocore.httpsession import AIOHTTPSession
from aiobotocore.session import AioSession
from aiohttp.abc import AbstractResolver, ResolveResult
from botocore.exceptions import BotoCoreError, ClientError
from botocore.httpsession import create_urllib3_context, get_cert_path
from botocore.loaders import create_loader

from app.integrations.s3 import errors as e
from app.kit import netpolicy


@dataclass(frozen=True)
class S3Access:
    """Where a bucket is and the key that opens it. The secret never reaches a repr."""

    endpoint_url: str  # scheme://host[:port], no path
    bucket: str
    region: str  # the region requests are signed for
    access_key_id: str
    secret_access_key: str = field(repr=False)
    path_style: bool = True


class PolicyResolver(AbstractResolver):
    """Resolve names for aiohttp, refusing any address the outbound policy refuses."""

    def __init__(self, policy: netpolicy.Policy) -> None:
        self.policy = policy

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        try:
            addrs = await netpolicy.check_before_connect(self.policy, host, port, "endpoint")
        except netpolicy.HostUnresolvable as exc:
            raise e.UnresolvableError(str(exc)) from None
        except netpolicy.OutboundAddressRefused as exc:
            raise e.AddressRefusedError(exc.message) from None
        results: list[ResolveResult] = []
        for addr in addrs:
            fam = socket.AF_INET6 if addr.version == 6 else socket.AF_INET
            if family not in (socket.AF_UNSPEC, fam):
                continue
            results.append(
                ResolveResult(
                    hostname=host,
                    host=str(addr),
                    port=port,
                    family=fam,
                    proto=0,
                    flags=socket.AI_NUMERICHOST,
                )
            )
        if not results:
            raise e.UnresolvableError(f"the name '{host}' has no address of the wanted family")
        return results

    async def close(self) -> None:
        return None


AddrInfo = tuple[int, int, int, str, tuple[Any, ...]]


def socket_factory(
    policy: netpolicy.Policy, services: netpolicy.ServiceMap
) -> Callable[[AddrInfo], socket.socket]:
    """Make each socket only after checking the address it will connect to."""

    def make(addr_info: AddrInfo) -> socket.socket:
        family, type_, proto, _, sockaddr = addr_info
        addr = ipaddress.ip_address(str(sockaddr[0]).split("%", 1)[0])
        port = int(sockaddr[1])
        why = policy.refusal(addr) or services.refusal(addr, port)
        if why:
            shown = f"[{addr}]:{port}" if addr.version == 6 else f"{addr}:{port}"
            raise e.AddressRefusedError(f"{shown} is {why}; this service does not connect to it")
        return socket.socket(family=family, type=type_, proto=proto)

    return make


class _NoRedirects:
    """An aiohttp session whose requests never follow a redirect."""

    def __init__(self, session: Any) -> None:
        self._session = session

    def request(self, method: str, **kwargs: Any) -> Any:
        return self._session.request(method, allow_redirects=False, **kwargs)


@functools.cache
def _ssl_context(ca_certs: str | None) -> ssl.SSLContext:
    """botocore's TLS settings with ``ca_certs`` loaded, made once per bundle."""
    context: ssl.SSLContext = create_urllib3_context()
    if ca_certs:
        context.load_verify_locations(ca_certs, None, None)
    return context


def session_class(policy: netpolicy.Policy, services: netpolicy.ServiceMap) -> type[AIOHTTPSession]:
    """aiobotocore's HTTP session with the peer check on every socket, no redirects and
    no proxy taken from the environment."""
    make_socket = socket_factory(policy, services)

    class PolicySession(AIOHTTPSession):
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            kwargs["proxies"] = {}
            kwargs["proxies_config"] = {}
            super().__init__(*args, **kwargs)

        def _create_connector(self, proxy_url: str | None) -> Any:
            verify = getattr(self, "_verify", None)
            if verify and not getattr(self, "_cert_file", None):
                # aiobotocore would load the CA bundle into a new SSL context for every
                # client (~35 ms of CPU); one context per bundle serves them all.
                connector = aiohttp.TCPConnector(
                    limit=self._max_pool_connections,  # type: ignore[attr-defined]
                    ssl=_ssl_context(get_cert_path(verify)),
                    **self._connector_args,  # type: ignore[attr-defined]
                )
            else:
                connector = super()._create_connector(None)  # type: ignore[misc]
            # aiohttp >= 3.12 dials through this factory (aiohappyeyeballs); fail loudly if
            # a later release renames it rather than connect unchecked.
            if not hasattr(connector, "_socket_factory"):
                raise RuntimeError("aiohttp's TCPConnector has no socket factory")
            connector._socket_factory = make_socket
            return connector

        async def _get_session(self, proxy_url: str | None) -> Any:
            return _NoRedirects(await super()._get_session(None))  # type: ignore[misc]

    return PolicySession


def make_config(
    access: S3Access,
    policy: netpolicy.Policy,
    *,
    services: netpolicy.ServiceMap | None = None,
    connect_timeout: float = 5.0,
    read_timeout: float = 15.0,
    max_attempts: int = 1,
) -> AioConfig:
    return AioConfig(
        connector_args={"resolver": PolicyResolver(policy)},
        http_session_cls=session_class(policy, services or netpolicy.ServiceMap({})),
        region_name=access.region,
        signature_version="s3v4",
        s3={"addressing_style": "path" if access.path_style else "virtual"},
        connect_timeout=connect_timeout,
        read_timeout=read_timeout,
        retries={"max_attempts": max_attempts, "mode": "standard"},
        # botocore >= 1.36 would otherwise add CRC checksums and aws-chunked bodies that
        # non-AWS servers store verbatim or refuse.
        request_checksum_calculation="when_required",
        response_checksum_validation="when_required",
        user_agent_extra="podbackup",
    )


PART_SIZE = 16 << 20  # S3 parts are 5 MiB (but the last) to 5 GiB, at most 10,000


@dataclass(frozen=True)
class Listing:
    keys: list[str]
    truncated: bool


def content_md5(data: bytes) -> str:
    return base64.b64encode(hashlib.md5(data, usedforsecurity=False).digest()).decode()


@dataclass(frozen=True)
class ObjectLock:
    """A bucket's Object Lock configuration as the server reports it."""

    enabled: bool
    mode: str | None = None  # GOVERNANCE | COMPLIANCE: the default retention's mode
    days: int | None = None  # the default retention period (years counted as 365 days)


class ObjectReader:
    """An object's bytes in chunks, never the whole object in memory."""

    def __init__(self, size: int, body: Any) -> None:
        self.size = size
        self._body = body

    async def chunks(self, chunk_size: int = 1 << 20) -> AsyncIterator[bytes]:
        try:
            while chunk := await self._body.read(chunk_size):
                yield chunk
        except (BotoCoreError, OSError, TimeoutError) as exc:
            raise e.classify(exc) from None

    def close(self) -> None:
        self._body.close()


class Bucket:
    """Calls on one bucket. Every method raises ``S3Failure`` on failure."""

    def __init__(self, client: Any, access: S3Access) -> None:
        self._client = client
        self.access = access
        self.name = access.bucket

    async def _call(self, method: str, **kwargs: Any) -> dict[str, Any]:
        try:
            response: dict[str, Any] = await getattr(self._client, method)(**kwargs)
        except (ClientError, BotoCoreError, OSError, TimeoutError) as exc:
            raise e.classify(exc) from None
        return response

    async def list_objects(
        self, prefix: str = "", max_keys: int = 1000, bucket: str | None = None
    ) -> Listing:
        response = await self._call(
            "list_objects_v2", Bucket=bucket or self.name, Prefix=prefix, MaxKeys=max_keys
        )
        keys = [str(obj["Key"]) for obj in response.get("Contents", []) or []]
        return Listing(keys=keys, truncated=bool(response.get("IsTruncated")))

    async def objects(self, prefix: str) -> AsyncIterator[tuple[str, datetime]]:
        """Every (key, last modified) under ``prefix``, a page of 1,000 at a time."""
        token: dict[str, str] = {}
        while True:
            page = await self._call("list_objects_v2", Bucket=self.name, Prefix=prefix, **token)
            for obj in page.get("Contents", []) or []:
                yield str(obj["Key"]), obj["LastModified"]
            if not page.get("IsTruncated") or not page.get("NextContinuationToken"):
                return
            token = {"ContinuationToken": str(page["NextContinuationToken"])}

    async def region(self) -> str | None:
        """The bucket's region as the server reports it (HeadBucket), if it does."""
        response = await self._call("head_bucket", Bucket=self.name)
        headers = response.get("ResponseMetadata", {}).get("HTTPHeaders", {}) or {}
        region = response.get("BucketRegion") or headers.get("x-amz-bucket-region")
        return str(region) if region else None

    async def put(self, key: str, data: bytes) -> None:
        """Write an object with Content-MD5, so a corrupted upload is refused by the server."""
        await self._call(
            "put_object", Bucket=self.name, Key=key, Body=data, ContentMD5=content_md5(data)
        )

    async def get(self, key: str) -> bytes:
        response = await self._call("get_object", Bucket=self.name, Key=key)
        body = response["Body"]
        try:
            async with body as stream:
                data: bytes = await stream.read()
        except (BotoCoreError, OSError, TimeoutError) as exc:
            raise e.classify(exc) from None
        return data

    async def upload_file(self, key: str, path: Path, *, part_size: int = PART_SIZE) -> None:
        """Upload a file of any size as a multipart upload, one part in memory at a time,
        each part with Content-MD5; an upload that fails is aborted (no parts left behind)."""
        # Past 9,000 parts the parts grow: S3 takes at most 10,000.
        part_size = max(part_size, -(-path.stat().st_size // 9000))
        created = await self._call("create_multipart_upload", Bucket=self.name, Key=key)
        upload_id = created["UploadId"]
        try:
            parts: list[dict[str, Any]] = []
            with path.open("rb") as fh:
                number = 1
                while True:
                    data = await asyncio.to_thread(fh.read, part_size)
                    if not data and parts:
                        break
                    answer = await self._call(
                        "upload_part", Bucket=self.name, Key=key, UploadId=upload_id,
                        PartNumber=number, Body=data, ContentMD5=content_md5(data),
                    )  # fmt: skip
                    parts.append({"PartNumber": number, "ETag": answer["ETag"]})
                    if len(data) < part_size:
                        break
                    number += 1
            await self._call(
                "complete_multipart_upload", Bucket=self.name, Key=key, UploadId=upload_id,
                MultipartUpload={"Parts": parts},
            )  # fmt: skip
        except BaseException:
            with contextlib.suppress(e.S3Failure):
                await self._call(
                    "abort_multipart_upload", Bucket=self.name, Key=key, UploadId=upload_id
                )
            raise

    async def open_object(self, key: str) -> ObjectReader | None:
        """An object opened for reading (its size known, its bytes not yet read), or None
        when there is no such object. Close the reader, read to the end or not."""
        try:
            response = await self._call("get_object", Bucket=self.name, Key=key)
        except e.S3Failure as failure:
            if failure.kind == e.NOT_FOUND:
                return None
            raise
        return ObjectReader(int(response["ContentLength"]), response["Body"])

    async def delete(self, key: str) -> None:
        await self._call("delete_object", Bucket=self.name, Key=key)

    async def exists(self, key: str) -> bool:
        try:
            await self._call("head_object", Bucket=self.name, Key=key)
        except e.S3Failure as failure:
            if failure.kind == e.NOT_FOUND:
                return False
            raise
        return True

    async def list_buckets(self) -> list[str]:
        response = await self._call("list_buckets")
        return [str(b["Name"]) for b in response.get("Buckets", []) or []]

    async def versioning(self) -> str | None:
        """ "Enabled", "Suspended", or None (never enabled)."""
        response = await self._call("get_bucket_versioning", Bucket=self.name)
        status = response.get("Status")
        return str(status) if status else None

    async def object_lock(self) -> bool:
        return (await self.lock_configuration()).enabled

    async def lock_configuration(self) -> ObjectLock:
        """The bucket's Object Lock: enabled, and its default retention when it has one."""
        try:
            response = await self._call("get_object_lock_configuration", Bucket=self.name)
        except e.S3Failure as failure:
            if failure.code in (
                "ObjectLockConfigurationNotFoundError",
                "ObjectLockConfigurationNotFound",
            ):
                return ObjectLock(enabled=False)
            raise
        config = response.get("ObjectLockConfiguration") or {}
        default = (config.get("Rule") or {}).get("DefaultRetention") or {}
        days = int(default.get("Days") or 0) + 365 * int(default.get("Years") or 0)
        mode = default.get("Mode")
        return ObjectLock(
            enabled=config.get("ObjectLockEnabled") == "Enabled",
            mode=str(mode) if mode else None,
            days=days or None,
        )


@functools.cache
def _session() -> AioSession:
    """One botocore session for every client of this process (each client gets its own
    key): a new session registers its handlers and parses the S3 service model again,
    0.05 to 0.15 s of CPU per client, and the target watch opens one per pod."""
    session = AioSession()
    session.register_component("data_loader", create_loader())
    return session


@contextlib.asynccontextmanager
async def open_bucket(
    access: S3Access,
    policy: netpolicy.Policy,
    *,
    connect_timeout: float = 5.0,
    read_timeout: float = 15.0,
    max_attempts: int = 1,
) -> AsyncIterator[Bucket]:
    """A client for ``access``'s bucket, closed on exit."""
    config = make_config(
        access,
        policy,
        services=await policy.service_map(),
        connect_timeout=connect_timeout,
        read_timeout=read_timeout,
        max_attempts=max_attempts,
    )
    client_context = _session().create_client(
        "s3",
        region_name=access.region,
        endpoint_url=access.endpoint_url,
        aws_access_key_id=access.access_key_id,
        aws_secret_access_key=access.secret_access_key,
        config=config,
    )
    async with client_context as client:
        client.meta.events.register("before-call.s3", _no_region_redirect)
        yield Bucket(client, access)


def _no_region_redirect(context: dict[str, Any], **_: Any) -> None:
    """botocore re-sends a request that got a 3xx to the "bucket's region" (the same
    custom endpoint again, and a bare 3xx makes it ask HeadBucket, which redirects too,
    without end): marked as redirected already, the 3xx comes back as an error."""
    context.setdefault("s3_redirect", {})["redirected"] = True
