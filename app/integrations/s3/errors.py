"""S3 failures mapped to stable kinds, from botocore/aiohttp exceptions and S3 error codes.

Messages carry the provider's error code and text, never request parameters or keys.
"""

from __future__ import annotations

import asyncio
import ssl
from typing import Any
from urllib.parse import urlsplit

from botocore.exceptions import (
    BotoCoreError,
    ClientError,
    ConnectionClosedError,
    ConnectTimeoutError,
    EndpointConnectionError,
    ReadTimeoutError,
)
from botocore.exceptions import (
    SSLError as BotoSSLError,
)

# Kinds a caller can rely on.
ADDRESS_REFUSED = "address_refused"  # the outbound-address policy refused the resolved address
UNRESOLVABLE = "unresolvable"
CONNECT_REFUSED = "connect_refused"
CONNECT_TIMEOUT = "connect_timeout"
TLS = "tls"
CONNECTION = "connection"  # other network failures (reset, closed)
READ_TIMEOUT = "read_timeout"
INVALID_ACCESS_KEY = "invalid_access_key"
SIGNATURE_MISMATCH = "signature_mismatch"
ACCESS_DENIED = "access_denied"
NO_SUCH_BUCKET = "no_such_bucket"
WRONG_REGION = "wrong_region"
NOT_FOUND = "not_found"
NOT_IMPLEMENTED = "not_implemented"
BAD_DIGEST = "bad_digest"
REDIRECT = "redirect"  # a 3xx towards another place: never followed
HTTP = "http"

NETWORK_KINDS = frozenset(
    {ADDRESS_REFUSED, UNRESOLVABLE, CONNECT_REFUSED, CONNECT_TIMEOUT, TLS, CONNECTION, READ_TIMEOUT}
)

_CODE_KINDS = {
    "InvalidAccessKeyId": INVALID_ACCESS_KEY,
    "SignatureDoesNotMatch": SIGNATURE_MISMATCH,
    "AccessDenied": ACCESS_DENIED,
    "AllAccessDisabled": ACCESS_DENIED,
    "403": ACCESS_DENIED,
    "Forbidden": ACCESS_DENIED,
    "NoSuchBucket": NO_SUCH_BUCKET,
    "PermanentRedirect": WRONG_REGION,
    "301": WRONG_REGION,
    "AuthorizationHeaderMalformed": WRONG_REGION,
    "IllegalLocationConstraintException": WRONG_REGION,
    "NoSuchKey": NOT_FOUND,
    "404": NOT_FOUND,
    "NotFound": NOT_FOUND,
    "NotImplemented": NOT_IMPLEMENTED,
    "501": NOT_IMPLEMENTED,
    "BadDigest": BAD_DIGEST,
    "InvalidDigest": BAD_DIGEST,
}


class AddressRefusedError(OSError):
    """Raised by the connection resolver when a name points at a refused address.

    An OSError so aiohttp reports it as a connection failure, not a crash.
    """


class UnresolvableError(OSError):
    """Raised by the connection resolver when a name does not resolve."""


class S3Failure(Exception):
    def __init__(
        self,
        kind: str,
        message: str,
        *,
        code: str | None = None,
        status: int | None = None,
        region: str | None = None,
    ) -> None:
        super().__init__(message)
        self.kind = kind
        self.message = message
        self.code = code
        self.status = status
        self.region = region  # the bucket's region, when the server named it

    @property
    def network(self) -> bool:
        return self.kind in NETWORK_KINDS


def _chain(exc: BaseException) -> list[BaseException]:
    """The exception and everything it wraps (botocore ``error=``, aiohttp ``os_error``)."""
    seen: list[BaseException] = []
    todo: list[BaseException | None] = [exc]
    while todo:
        cur = todo.pop()
        if cur is None or any(cur is s for s in seen):
            continue
        seen.append(cur)
        kwargs: dict[str, Any] = getattr(cur, "kwargs", None) or {}
        todo.extend(
            [
                cur.__cause__,
                cur.__context__,
                kwargs.get("error") if isinstance(kwargs.get("error"), BaseException) else None,
                getattr(cur, "os_error", None),
            ]
        )
    return seen


def _region_of(response: dict[str, Any]) -> str | None:
    headers = response.get("ResponseMetadata", {}).get("HTTPHeaders", {}) or {}
    region = headers.get("x-amz-bucket-region") or response.get("Error", {}).get("Region")
    return str(region) if region else None


def from_client_error(exc: ClientError) -> S3Failure:
    response: dict[str, Any] = dict(exc.response)
    error = response.get("Error", {}) or {}
    code = str(error.get("Code") or "")
    status = response.get("ResponseMetadata", {}).get("HTTPStatusCode")
    kind = _CODE_KINDS.get(code, HTTP)
    if kind == HTTP and status == 403:
        kind = ACCESS_DENIED
    if kind == HTTP and status == 301:
        kind = WRONG_REGION
    region = _region_of(response)
    headers = response.get("ResponseMetadata", {}).get("HTTPHeaders", {}) or {}
    location = str(headers.get("location") or "")
    if isinstance(status, int) and 300 <= status < 400 and location:
        return S3Failure(
            REDIRECT,
            f"the endpoint answered HTTP {status}, a redirect to {_place(location)}; "
            "this service does not follow redirects",
            code=code,
            status=status,
            region=region,
        )
    if code == "AuthorizationHeaderMalformed" and not region:
        region = _expected_region(str(error.get("Message") or ""))
    text = str(error.get("Message") or "").strip() or f"HTTP {status}"
    return S3Failure(kind, f"{code or status}: {text}", code=code, status=status, region=region)


def _place(location: str) -> str:
    """Where a redirect points, without its path and query (they may carry signatures)."""
    try:
        parts = urlsplit(location)
    except ValueError:
        return "an unreadable address"
    if not parts.netloc:
        return "another path on the same endpoint"
    return f"'{parts.scheme}://{parts.netloc.rpartition('@')[2]}'"[:200]


def _expected_region(message: str) -> str | None:
    """AWS: "the region 'us-east-1' is wrong; expecting 'eu-central-1'"."""
    marker = "expecting '"
    at = message.find(marker)
    if at < 0:
        return None
    end = message.find("'", at + len(marker))
    return message[at + len(marker) : end] or None


def _verify_message(exc: ssl.SSLCertVerificationError) -> str:
    """Why the certificate was refused. aiohttp's ClientConnectorCertificateError is one
    of these without ``verify_message``: the reason is on the error it wraps."""
    message = getattr(exc, "verify_message", None)
    if message is None:
        inner = getattr(exc, "certificate_error", None)
        message = getattr(inner, "verify_message", None) or str(inner or exc)
    return str(message)


def classify(exc: BaseException) -> S3Failure:
    """Any exception from an S3 call as an S3Failure (unknown ones re-raised by the caller)."""
    if isinstance(exc, S3Failure):
        return exc
    if isinstance(exc, ClientError):
        return from_client_error(exc)
    chain = _chain(exc)
    for cur in chain:
        if isinstance(cur, AddressRefusedError):
            return S3Failure(ADDRESS_REFUSED, str(cur))
        if isinstance(cur, UnresolvableError):
            return S3Failure(UNRESOLVABLE, str(cur))
    for cur in chain:
        if isinstance(cur, ssl.SSLCertVerificationError):
            return S3Failure(TLS, f"the TLS certificate is not valid: {_verify_message(cur)}")
    if any(isinstance(cur, BotoSSLError | ssl.SSLError) for cur in chain):
        reason = next((str(c) for c in chain if isinstance(c, ssl.SSLError)), "handshake failed")
        return S3Failure(TLS, f"TLS failed: {reason}")
    if isinstance(exc, ConnectTimeoutError):
        return S3Failure(CONNECT_TIMEOUT, "the endpoint did not accept a connection in time")
    if isinstance(exc, ReadTimeoutError | asyncio.TimeoutError | TimeoutError):
        return S3Failure(READ_TIMEOUT, "the endpoint did not answer in time")
    if any(isinstance(cur, ConnectionRefusedError) for cur in chain):
        return S3Failure(CONNECT_REFUSED, "the endpoint refused the connection")
    if isinstance(exc, EndpointConnectionError | ConnectionClosedError):
        return S3Failure(CONNECTION, "the connection to the endpoint failed")
    if isinstance(exc, BotoCoreError | OSError):
        return S3Failure(
            CONNECTION, f"the connection to the endpoint failed ({type(exc).__name__})"
        )
    raise exc
