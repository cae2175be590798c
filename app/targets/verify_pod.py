"""Verify the pod's own side, as a backup will reach it: the files (an SFTP login and a
listing of the folder, or a local folder) and the database (a login and a dump client
that fits the server). The same checks a panel's "test connection" runs, within the
verification's time budget and the outbound policy (both connects check it).

A pod without files or database settings gets no check for that side.
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Awaitable, Callable
from pathlib import Path

from app.config import Settings
from app.integrations.dumps import DumpError
from app.integrations.dumps import check as db_check
from app.integrations.sftp import SftpError
from app.integrations.sftp import probe as sftp_check
from app.kit import netpolicy
from app.kit.validators import under_roots
from app.models import Pod
from app.models.shapes import SftpFiles
from app.podio.access import db_endpoint, sftp_endpoint
from app.pods.service import PodSecrets
from app.targets.checks import Checks, OutOfTime
from app.targets.schemas import VerifyCheck

log = logging.getLogger(__name__)

FILES = "pod_files"
DATABASE = "pod_database"
_LOCAL_LIMIT = 1000

_Step = Callable[[Checks], Awaitable[None]]  # one side's check, on a Checks of its name


async def verify_pod(
    settings: Settings, pod: Pod, secrets: PodSecrets
) -> tuple[bool, list[VerifyCheck]]:
    """Both sides at once, each within the budget; ``ok`` is false when one failed."""
    policy = netpolicy.Policy.from_settings(settings)
    runs = []
    if pod.files:
        runs.append(_guarded(FILES, settings, _files(settings, pod, secrets, policy)))
    if pod.database:
        runs.append(_guarded(DATABASE, settings, _database(pod, secrets, policy)))
    items = [item for found in await asyncio.gather(*runs) for item in found]
    return not any(c.level == "error" for c in items), items


async def _guarded(name: str, settings: Settings, step: _Step) -> list[VerifyCheck]:
    checks = Checks((name,), settings.verify_budget_seconds)
    try:
        await step(checks)
    except OutOfTime:
        checks.fail(
            name,
            f"no answer within the verification's time budget of {checks.budget:.0f} s",
            "check that the pod is running and its host and port are right; a pod that "
            "answers this slowly may also fail its backups",
        )
    except Exception:
        log.exception("verify: unexpected failure during the %s check", name)
        checks.crashed()
    return checks.result()


def _files(settings: Settings, pod: Pod, secrets: PodSecrets, policy: netpolicy.Policy) -> _Step:
    files = pod.files

    async def run(c: Checks) -> None:
        if isinstance(files, SftpFiles):
            await _sftp(c, pod, secrets, policy)
        else:
            await _local(c, settings, Path(files.path if files is not None else ""))

    return run


async def _sftp(c: Checks, pod: Pod, secrets: PodSecrets, policy: netpolicy.Policy) -> None:
    endpoint = sftp_endpoint(pod, secrets)
    where = f"{endpoint.host}:{endpoint.port}"
    try:
        found = await c.within(sftp_check.check_login(endpoint, policy))
    except netpolicy.OutboundAddressRefused as exc:
        c.fail(FILES, exc.message, exc.hint)
        return
    except SftpError as exc:
        c.fail(FILES, exc.message, exc.hint)
        return
    pin = (
        "the pinned key"
        if found.pinned
        else "not pinned yet: the first backup pins it, later ones require it"
    )
    detail = (
        f"logged in to {where} as '{endpoint.username}'; '{endpoint.path}' is a folder "
        f"that could be listed ({_count(found.entries, found.more)}); host key "
        f"{found.fingerprint} ({pin})"
    )
    if found.entries == 0:
        c.warn(
            FILES,
            detail,
            "the folder is empty, so a backup would hold no files: check the path in the "
            "pod's files settings",
        )
    else:
        c.ok(FILES, detail)


def _list_local(path: Path) -> tuple[int, bool]:
    count = 0
    with os.scandir(path) as it:
        for _ in it:
            count += 1
            if count >= _LOCAL_LIMIT:
                break
    return count, count >= _LOCAL_LIMIT


async def _local(c: Checks, settings: Settings, path: Path) -> None:
    if not under_roots(str(path), settings.local_roots):
        c.fail(
            FILES,
            f"'{path}' is not under an allowed local root",
            "allowed roots: " + (", ".join(map(str, settings.local_roots)) or "none"),
        )
        return
    if not path.is_dir():
        c.fail(
            FILES,
            f"the folder '{path}' does not exist"
            if not path.exists()
            else f"'{path}' is not a folder",
            "check the path in the pod's files settings",
        )
        return
    try:
        entries, more = await c.within(asyncio.to_thread(_list_local, path))
    except OSError as exc:
        c.fail(
            FILES,
            f"the folder '{path}' cannot be listed: {exc.strerror or exc}",
            "the workers need read access to the pod's folder",
        )
        return
    detail = f"'{path}' is a folder that could be listed ({_count(entries, more)})"
    if entries == 0:
        c.warn(FILES, detail, "the folder is empty, so a backup would hold no files")
    else:
        c.ok(FILES, detail)


def _database(pod: Pod, secrets: PodSecrets, policy: netpolicy.Policy) -> _Step:
    async def run(c: Checks) -> None:
        endpoint = db_endpoint(pod, secrets)
        try:
            found = await c.within(db_check.check_login(endpoint, policy, timeout=c.left()))
        except netpolicy.OutboundAddressRefused as exc:
            c.fail(DATABASE, exc.message, exc.hint)
            return
        except DumpError as exc:
            if exc.code == "timeout":
                raise OutOfTime from None
            c.fail(DATABASE, exc.message, exc.hint)
            return
        c.ok(
            DATABASE,
            f"logged in to {endpoint.kind} at {endpoint.host}:{endpoint.port} as "
            f"'{endpoint.username}', database '{endpoint.name}' (server {found.server_version}); "
            f"dump client {found.client} fits",
        )

    return run


def _count(entries: int, more: bool) -> str:
    if more:
        return f"{entries} entries or more"
    return "1 entry" if entries == 1 else f"{entries} entries"
