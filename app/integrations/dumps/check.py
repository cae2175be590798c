"""A pod database's "test connection": the address is allowed, the login opens the
database, and this worker has a dump client that fits the server's version."""

from __future__ import annotations

from dataclasses import dataclass

from app.integrations.dumps.clients import mysql_dumper, pg_client
from app.integrations.dumps.model import DbEndpoint, family
from app.integrations.dumps.runner import backend, guarded, resolve
from app.kit.netpolicy import Policy


@dataclass(frozen=True)
class LoginCheck:
    server_version: str
    client: str  # "<path> (<version text>)" of the dump client a backup would run


async def check_login(endpoint: DbEndpoint, policy: Policy, *, timeout: float) -> LoginCheck:
    """Raises DumpError (secret masked) or netpolicy.OutboundAddressRefused."""

    async def work() -> LoginCheck:
        conn = await resolve(policy, endpoint)
        info = await backend(endpoint.kind).probe(conn)
        if family(endpoint.kind) == "postgres":
            binary, version = await pg_client("pg_dump", info.major)
        else:
            binary, version = await mysql_dumper()
        return LoginCheck(server_version=info.version, client=f"{binary} ({version})")

    return await guarded(
        work(), cancel=None, timeout=timeout, what="connection test", secret=endpoint.password
    )
