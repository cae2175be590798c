"""A bare TCP (and TLS) connection to an endpoint, to tell network problems apart
from S3 ones before any request is signed."""

from __future__ import annotations

import asyncio
import contextlib
import ssl
from collections.abc import Sequence
from dataclasses import dataclass

from app.integrations.s3 import errors as e
from app.kit.netpolicy import IPAddress


@dataclass(frozen=True)
class Connected:
    address: str
    port: int
    tls_version: str | None


def tls_context() -> ssl.SSLContext:
    """The system trust store, as restic (the engine doing the real work) uses."""
    return ssl.create_default_context()


async def probe(
    host: str,
    port: int,
    addresses: Sequence[IPAddress],
    *,
    tls: bool,
    timeout: float,
) -> Connected:
    """Connect to the first address that answers; raise S3Failure naming why none did.

    ``addresses`` are the ones the outbound policy approved; the name is used only for
    TLS (SNI and certificate check).
    """
    last: e.S3Failure | None = None
    for addr in addresses:
        try:
            async with asyncio.timeout(timeout):
                reader, writer = await asyncio.open_connection(
                    str(addr),
                    port,
                    ssl=tls_context() if tls else None,
                    server_hostname=host if tls else None,
                )
        except ssl.SSLCertVerificationError as exc:
            raise e.S3Failure(
                e.TLS, f"the TLS certificate of '{host}' is not valid: {exc.verify_message}"
            ) from None
        except ssl.SSLError as exc:
            raise e.S3Failure(
                e.TLS, f"the TLS handshake with '{host}' failed: {exc.reason or exc}"
            ) from None
        except TimeoutError:
            last = e.S3Failure(
                e.CONNECT_TIMEOUT, f"{_show(addr, port)} did not answer within {timeout:.0f} s"
            )
            continue
        except ConnectionRefusedError:
            last = e.S3Failure(e.CONNECT_REFUSED, f"{_show(addr, port)} refused the connection")
            continue
        except (ConnectionError, OSError) as exc:
            if isinstance(exc, ssl.SSLError):  # pragma: no cover - handled above
                raise
            reason = exc.strerror or type(exc).__name__
            last = e.S3Failure(e.CONNECTION, f"{_show(addr, port)}: {reason}")
            continue
        version = None
        if tls:
            ssl_object = writer.get_extra_info("ssl_object")
            version = ssl_object.version() if ssl_object is not None else None
        writer.close()
        with contextlib.suppress(Exception):
            await asyncio.wait_for(writer.wait_closed(), 1)
        del reader
        return Connected(address=str(addr), port=port, tls_version=version)
    assert last is not None, "no addresses to connect to"
    raise last


def _show(addr: IPAddress, port: int) -> str:
    return f"[{addr}]:{port}" if addr.version == 6 else f"{addr}:{port}"
