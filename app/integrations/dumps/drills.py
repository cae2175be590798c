"""Trial restore: load a dump into a scratch database on the drill server, compare tables
and row counts with what the dump recorded, always drop the scratch database."""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import logging
import secrets
import time
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

from app.integrations.dumps.errors import DumpError
from app.integrations.dumps.manifest import read_manifest
from app.integrations.dumps.model import DbEndpoint, DrillResult, family
from app.integrations.dumps.ops import load_into
from app.integrations.dumps.runner import backend, guarded, resolve
from app.kit.netpolicy import Policy

log = logging.getLogger(__name__)

# The drill server is the operator's own configuration, not user input: any address.
_OPERATOR = Policy(allow=(ipaddress.ip_network("0.0.0.0/0"), ipaddress.ip_network("::/0")))
_SCHEMES = {"postgres": ("postgres", "postgresql"), "mysql": ("mysql", "mariadb")}


def drill_endpoint(drill_url: str, kind: str, database: str) -> DbEndpoint:
    """The drill server's login from its URL (libpq URL for postgres, mysql://user[:pass]
    @host:port for MySQL/MariaDB), pointed at ``database``."""
    fam = family(kind)
    parts = urlsplit(drill_url)
    if parts.scheme not in _SCHEMES[fam] or not parts.hostname:
        expected = (
            "postgresql://user[:pass]@host:port"
            if fam == "postgres"
            else ("mysql://user[:pass]@host:port")
        )
        raise DumpError(
            "unreachable",
            f"the drill server URL for {kind} is not a {expected} URL",
            hint="set PODBACKUP_DRILL_POSTGRES_URL / PODBACKUP_DRILL_MYSQL_URL",
        )
    default_user = "postgres" if fam == "postgres" else "root"
    return DbEndpoint(
        kind=kind,
        host=parts.hostname,
        port=parts.port or (5432 if fam == "postgres" else 3306),
        name=database,
        username=unquote(parts.username) if parts.username else default_user,
        password=unquote(parts.password) if parts.password is not None else None,
    )


def compare(
    expected: dict[str, int], restored: dict[str, int]
) -> tuple[dict[str, dict[str, Any]], list[str]]:
    tables: dict[str, dict[str, Any]] = {}
    problems: list[str] = []
    for name in sorted(set(expected) | set(restored)):
        want, got = expected.get(name), restored.get(name)
        ok = want is not None and want == got
        tables[name] = {"expected": want, "restored": got, "ok": ok}
        if want is None:
            problems.append(f"table {name}: restored but not recorded in the dump")
        elif got is None:
            problems.append(f"table {name}: missing after the restore")
        elif want != got:
            problems.append(f"table {name}: {want} rows expected, {got} restored")
    return tables, problems


async def trial_restore(
    sql_file: Path,
    kind: str,
    drill_url: str,
    expected: dict[str, int] | None = None,
    *,
    timeout: float | None = None,
    cancel: asyncio.Event | None = None,
) -> DrillResult:
    """Load ``sql_file`` into ``podbackup_drill_<random>`` on the drill server and compare
    tables and row counts with ``expected`` (recorded at dump time) or, without it, with
    the dump's own manifest. The scratch database is always dropped.

    Problems with the dump are reported in the result, not raised (a drill answers
    pass/fail); an unusable ``drill_url`` raises DumpError.
    """
    started = time.monotonic()
    manifest = await asyncio.to_thread(read_manifest, Path(sql_file))
    if not manifest.complete:
        problem = manifest.problem or "the dump is incomplete"
        return DrillResult(False, {}, [problem], time.monotonic() - started)
    if manifest.kind != family(kind):
        problem = f"the dump is a {manifest.kind} dump, not {kind}"
        return DrillResult(False, {}, [problem], time.monotonic() - started)
    want = dict(expected if expected is not None else manifest.tables)
    endpoint = drill_endpoint(drill_url, kind, f"podbackup_drill_{secrets.token_hex(6)}")
    problems: list[str] = []
    restored: dict[str, int] = {}

    async def work() -> dict[str, int]:
        conn = await resolve(_OPERATOR, endpoint)
        impl = backend(kind)
        await impl.create_database(conn, pristine=True)
        try:
            return (await load_into(conn, Path(sql_file), replace=False)).tables
        finally:
            # a timeout or cancel must still drop the scratch database: shield the drop
            # and wait for it before letting the cancellation go on
            drop = asyncio.ensure_future(impl.drop_database(conn))
            try:
                await asyncio.shield(drop)
            except asyncio.CancelledError:
                with contextlib.suppress(Exception):
                    await drop
                raise
            except Exception as exc:
                log.warning("could not drop drill database %s: %s", endpoint.name, exc)

    try:
        restored = await guarded(
            work(), cancel=cancel, timeout=timeout, what="trial restore", secret=endpoint.password
        )
    except DumpError as exc:
        problems.append(f"the dump did not restore ({exc.code}): {exc.message}")
        return DrillResult(False, {}, problems, time.monotonic() - started)
    tables, problems = compare(want, restored)
    return DrillResult(not problems, tables, problems, time.monotonic() - started)
