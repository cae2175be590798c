"""A pod's SFTP "test connection": log in as a backup would, and list the remote folder."""

from __future__ import annotations

from dataclasses import dataclass

import asyncssh

from app.integrations.sftp.connection import open_session
from app.integrations.sftp.endpoint import SftpEndpoint, fingerprint
from app.integrations.sftp.errors import SftpError, classify
from app.kit import netpolicy

LIST_LIMIT = 1000  # entries counted at most: enough to tell an empty folder from a used one


@dataclass(frozen=True)
class LoginCheck:
    host_key: str  # "<alg> <base64>" the server presented
    fingerprint: str  # SHA256:… of that key
    pinned: bool  # the pod had a pinned key (and the server's matched it)
    entries: int  # entries in the remote folder, counted up to LIST_LIMIT
    more: bool  # LIST_LIMIT was reached


async def check_login(endpoint: SftpEndpoint, policy: netpolicy.Policy) -> LoginCheck:
    """Connect under the outbound policy and the pinned host key, log in, check the remote
    root is a folder and list it. Raises OutboundAddressRefused or SftpError."""
    async with open_session(endpoint, policy) as session:
        shown = session.root.decode("utf-8", "backslashreplace")
        count = 0
        try:
            async for entry in session.sftp.scandir(session.root):
                if entry.filename in (b".", b"..", ".", ".."):
                    continue
                count += 1
                if count >= LIST_LIMIT:
                    break
        except asyncssh.SFTPPermissionDenied:
            raise SftpError(
                "not_found",
                f"the remote folder '{shown}' exists, but this login may not list it",
                hint="give the SFTP user read access to the folder, or choose another folder",
            ) from None
        except (asyncssh.Error, OSError) as exc:
            raise classify(exc, f"listing the remote folder '{shown}'") from None
        return LoginCheck(
            host_key=session.host_key,
            fingerprint=fingerprint(session.host_key),
            pinned=bool(endpoint.known_host_key),
            entries=count,
            more=count >= LIST_LIMIT,
        )
