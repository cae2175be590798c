"""Pod rules: tenancy, secrets encrypted at rest, outbound-address checks on save."""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from typing import Any

from pydantic import SecretStr
from sqlalchemy import Select
from sqlalchemy.ext.asyncio import AsyncSession

from app.auth.dependencies import Principal
from app.config import Settings
from app.errors import Conflict, Forbidden, NotFound, ValidationFailed
from app.integrations.sftp.endpoint import is_host_key_line
from app.kit import netpolicy
from app.kit.crypto import Keyring
from app.kit.validators import under_roots
from app.models import Account, Pod
from app.models.encrypted import POD_DATABASE, POD_FILES
from app.models.shapes import LocalFiles, PodDatabase, PodHooks, SftpFiles
from app.pods import repository
from app.pods.schemas import (
    DEFAULT_DB_PORTS,
    DatabaseConfig,
    DatabaseRead,
    Hooks,
    HooksRead,
    LocalSource,
    LocalSourceRead,
    PodCreate,
    PodRead,
    PodUpdate,
    SftpSource,
    SftpSourceRead,
)


@dataclass(frozen=True)
class PodSecrets:
    """Decrypted secrets of a pod, for a worker's memory only."""

    sftp_password: str | None = None
    sftp_private_key: str | None = None
    db_password: str | None = None

    def values(self) -> list[str]:
        return [v for v in (self.sftp_password, self.sftp_private_key, self.db_password) if v]


def decrypt_secrets(keyring: Keyring, pod: Pod) -> PodSecrets:
    files: dict[str, Any] = {}
    db: dict[str, Any] = {}
    if pod.files_secret:
        files = json.loads(keyring.decrypt(pod.files_secret, POD_FILES.context(pod.id)))
    if pod.database_secret:
        db = json.loads(keyring.decrypt(pod.database_secret, POD_DATABASE.context(pod.id)))
    return PodSecrets(
        sftp_password=files.get("password"),
        sftp_private_key=files.get("private_key"),
        db_password=db.get("password"),
    )


def _secret_update(new: SecretStr | None, old: str | None) -> str | None:
    """Omitted keeps the stored value; an empty string clears it."""
    if new is None:
        return old
    value = new.get_secret_value()
    return value or None


def _seal(
    keyring: Keyring, values: dict[str, str | None], context: str
) -> tuple[str | None, list[str]]:
    """Ciphertext of the set values, and the names of those set (kept in clear for reads)."""
    kept = {k: v for k, v in values.items() if v}
    return (keyring.encrypt(json.dumps(kept), context) if kept else None), sorted(kept)


async def _check_hosts(
    settings: Settings,
    principal: Principal,
    files: SftpSource | LocalSource | None,
    database: DatabaseConfig | None,
    hooks: Hooks | None,
) -> None:
    policy = netpolicy.Policy.from_settings(settings)
    if isinstance(files, SftpSource):
        await netpolicy.check_on_save(policy, "files.host", files.host, files.port)
        if files.host_key is not None:
            _check_host_key(files.host_key)
    if isinstance(files, LocalSource):
        if not principal.is_admin:
            raise Forbidden(
                "a local file source is for operators (admin tokens) only",
                hint="use kind 'sftp' with the pod's SFTP access",
            )
        if not settings.local_roots:
            raise ValidationFailed(
                "files.path",
                "local sources are disabled on this service",
                hint="an operator enables them with PODBACKUP_LOCAL_ROOTS",
            )
        if not under_roots(files.path, settings.local_roots):
            raise ValidationFailed(
                "files.path",
                f"'{files.path}' is not under an allowed local root",
                hint="allowed roots: " + ", ".join(str(r) for r in settings.local_roots),
            )
    if database is not None:
        port = database.port or DEFAULT_DB_PORTS[database.kind]
        await netpolicy.check_on_save(policy, "database.host", database.host, port)
    if hooks is not None:
        for field in ("stop_url", "start_url"):
            url = getattr(hooks, field)
            if url:
                await netpolicy.check_url_on_save(policy, f"hooks.{field}", url)


def _check_host_key(line: str) -> None:
    if not is_host_key_line(line):
        raise ValidationFailed(
            "files.host_key",
            "host_key is not an OpenSSH public key line",
            hint="paste a line like 'ssh-ed25519 AAAAC3Nz...' (from ssh-keyscan)",
        )


def _apply_files(
    keyring: Keyring, pod: Pod, files: SftpSource | LocalSource | None, keep_old: bool
) -> None:
    old: dict[str, Any] = {}
    if keep_old and pod.files_secret:
        old = json.loads(keyring.decrypt(pod.files_secret, POD_FILES.context(pod.id)))
    if files is None:
        pod.files, pod.files_secret = None, None
        return
    if isinstance(files, LocalSource):
        pod.files, pod.files_secret = LocalFiles(kind="local", path=files.path), None
        return
    previous = pod.files
    same_server = (
        isinstance(previous, SftpFiles)
        and previous.host == files.host
        and previous.port == files.port
    )
    if files.host_key:
        pod.pinned_host_key, pod.pinned_host_key_at = files.host_key.strip(), None
    elif not same_server:
        pod.pinned_host_key, pod.pinned_host_key_at = None, None
    pod.files_secret, names = _seal(
        keyring,
        {
            "password": _secret_update(files.password, old.get("password")),
            "private_key": _secret_update(files.private_key, old.get("private_key")),
        },
        POD_FILES.context(pod.id),
    )
    pod.files = SftpFiles(
        kind="sftp",
        host=files.host,
        port=files.port,
        username=files.username,
        path=files.path,
        host_key=files.host_key.strip() if files.host_key else None,
        secrets_set=names,
    )


def _apply_database(
    keyring: Keyring, pod: Pod, database: DatabaseConfig | None, keep_old: bool
) -> None:
    old: dict[str, Any] = {}
    if keep_old and pod.database_secret:
        old = json.loads(keyring.decrypt(pod.database_secret, POD_DATABASE.context(pod.id)))
    if database is None:
        pod.database, pod.database_secret = None, None
        return
    pod.database_secret, names = _seal(
        keyring,
        {"password": _secret_update(database.password, old.get("password"))},
        POD_DATABASE.context(pod.id),
    )
    pod.database = PodDatabase(
        kind=database.kind,
        host=database.host,
        port=database.port or DEFAULT_DB_PORTS[database.kind],
        name=database.name,
        username=database.username,
        secrets_set=names,
    )


def _stored_names(section: SftpFiles | PodDatabase | None, sealed: str | None) -> set[str]:
    """The names of the secrets stored for a section (kept in clear beside the ciphertext)."""
    if section is None or not sealed:
        return set()
    return set(section.secrets_set or ("password", "private_key"))


def _require_secrets_again(pod: Pod, body: PodUpdate, given: set[str]) -> None:
    """A stored secret goes only where it was given for. Moving the SFTP access or the
    database to another host, port or login (or database kind) with the password omitted
    would send the stored one to the new place on the next job: that needs the secret
    again (or '' to drop it), as a new S3 key needs its secret."""
    files = body.files if "files" in given else None
    old_files = pod.files
    if isinstance(files, SftpSource) and isinstance(old_files, SftpFiles):
        where = (files.host, files.port, files.username)
        if where != (old_files.host, old_files.port, old_files.username):
            for name in sorted(_stored_names(old_files, pod.files_secret)):
                if getattr(files, name, None) is None:
                    raise ValidationFailed(
                        f"files.{name}",
                        f"the SFTP host, port or username changed: the stored {name} "
                        "belongs to the old server and is not sent to the new one",
                        hint=f"enter the {name} for {files.username}@{files.host}:{files.port} "
                        f"again, or send {name}: '' to drop it",
                    )
    database = body.database if "database" in given else None
    old_db = pod.database
    if database is not None and old_db is not None:
        port = database.port or DEFAULT_DB_PORTS[database.kind]
        where_db = (database.kind, database.host, port, database.username)
        before = (old_db.kind, old_db.host, old_db.port, old_db.username)
        if (
            where_db != before
            and "password" in _stored_names(old_db, pod.database_secret)
            and database.password is None
        ):
            raise ValidationFailed(
                "database.password",
                "the database host, port, username or kind changed: the stored password "
                "belongs to the old server and is not sent to the new one",
                hint=f"enter the password of {database.username}@{database.host}:{port} "
                "again, or send password: '' to drop it",
            )


class PodNameTaken(Conflict):
    """409: the account has a pod of that name already."""


def _name_taken(name: str, other: uuid.UUID | None) -> PodNameTaken:
    return PodNameTaken(
        f"this account has a pod named '{name}' already"
        + (f" ({other})" if other is not None else ""),
        hint="pod names are unique per account: choose another name, or rename the other "
        "pod first (PATCH /v1/pods/{id} with a new name; `podbackup pods update POD --name NEW`)",
    )


async def _require_free_name(
    session: AsyncSession, account_id: uuid.UUID, name: str, pod_id: uuid.UUID | None
) -> None:
    other = await repository.named(session, account_id, name)
    if other is not None and other != pod_id:
        raise _name_taken(name, other)


async def _flush_named(session: AsyncSession, pod: Pod) -> None:
    """Flush the pod; a name taken meanwhile by a concurrent request is the same 409 (the
    request's transaction is rolled back with it)."""
    if not await repository.flush_unique_name(session):
        raise _name_taken(pod.name, None)


def _hooks(hooks: Hooks | None) -> PodHooks | None:
    if hooks is None or not (hooks.stop_url or hooks.start_url):
        return None
    return PodHooks(stop_url=hooks.stop_url, start_url=hooks.start_url)


async def create(
    session: AsyncSession,
    settings: Settings,
    keyring: Keyring,
    principal: Principal,
    body: PodCreate,
) -> Pod:
    if principal.is_admin:
        if body.account_id is None:
            raise ValidationFailed(
                "account_id", "admin tokens must give account_id", hint="add the owner's account id"
            )
        account_id = body.account_id
    else:
        if body.account_id is not None and body.account_id != principal.account_id:
            raise ValidationFailed(
                "account_id",
                "account tokens create pods in their own account only",
                hint="omit account_id",
            )
        assert principal.account_id is not None
        account_id = principal.account_id
    if await session.get(Account, account_id) is None:
        raise ValidationFailed("account_id", "no such account")
    await _check_hosts(settings, principal, body.files, body.database, body.hooks)
    await _require_free_name(session, account_id, body.name, None)
    pod = Pod(id=uuid.uuid4(), account_id=account_id, name=body.name, app=body.app)
    _apply_files(keyring, pod, body.files, keep_old=False)
    _apply_database(keyring, pod, body.database, keep_old=False)
    pod.hooks = _hooks(body.hooks)
    session.add(pod)
    await _flush_named(session, pod)
    return pod


async def update(
    session: AsyncSession,
    settings: Settings,
    keyring: Keyring,
    principal: Principal,
    pod: Pod,
    body: PodUpdate,
) -> Pod:
    given = body.model_fields_set
    await _check_hosts(
        settings,
        principal,
        body.files if "files" in given else None,
        body.database if "database" in given else None,
        body.hooks if "hooks" in given else None,
    )
    _require_secrets_again(pod, body, given)
    if "name" in given and body.name is not None and body.name != pod.name:
        await _require_free_name(session, pod.account_id, body.name, pod.id)
    if "name" in given and body.name is not None:
        pod.name = body.name
    if "app" in given and body.app is not None:
        pod.app = body.app
    if "files" in given:
        if isinstance(body.files, LocalSource) and not principal.is_admin:
            raise Forbidden("a local file source is for operators (admin tokens) only")
        _apply_files(keyring, pod, body.files, keep_old=True)
    if "database" in given:
        _apply_database(keyring, pod, body.database, keep_old=True)
    if "hooks" in given:
        pod.hooks = _hooks(body.hooks)
    await _flush_named(session, pod)
    return pod


async def get_visible(session: AsyncSession, principal: Principal, pod_id: uuid.UUID) -> Pod:
    """The pod, when this principal may see it; otherwise 404 exactly like a missing one."""
    pod = await session.get(Pod, pod_id)
    if pod is None or not principal.owns(pod.account_id):
        raise NotFound("Pod not found", hint="check the pod id")
    return pod


async def require_visible(
    session: AsyncSession, principal: Principal, pod_id: uuid.UUID
) -> uuid.UUID:
    """Like ``get_visible`` for read paths that need only the pod's account: one indexed
    lookup of a column, no ORM object (status, lists and job history are polled often)."""
    account_id = await repository.account_of(session, pod_id)
    if account_id is None or not principal.owns(account_id):
        raise NotFound("Pod not found", hint="check the pod id")
    return account_id


def list_query(principal: Principal, account_id: uuid.UUID | None = None) -> Select[tuple[Pod]]:
    """An account sees its own pods; an admin all, or one account's."""
    return repository.list_query(account_id if principal.is_admin else principal.account_id)


def to_read(pod: Pod) -> PodRead:
    files_read: SftpSourceRead | LocalSourceRead | None = None
    f = pod.files
    if isinstance(f, SftpFiles):
        files_read = SftpSourceRead(
            kind="sftp",
            host=f.host,
            port=f.port,
            username=f.username,
            path=f.path,
            password_set="password" in (f.secrets_set or []),
            private_key_set="private_key" in (f.secrets_set or []),
            host_key=pod.pinned_host_key or f.host_key,
        )
    elif f is not None:
        files_read = LocalSourceRead(kind="local", path=f.path)
    db_read = None
    if (d := pod.database) is not None:
        db_read = DatabaseRead(
            kind=d.kind,
            host=d.host,
            port=d.port,
            name=d.name,
            username=d.username,
            password_set="password" in (d.secrets_set or []),
        )
    h = pod.hooks
    hooks = HooksRead(stop_url=h.stop_url, start_url=h.start_url) if h is not None else None
    return PodRead(
        id=pod.id,
        account_id=pod.account_id,
        name=pod.name,
        app=pod.app,
        files=files_read,
        database=db_read,
        hooks=hooks,
        created_at=pod.created_at,
        updated_at=pod.updated_at,
    )
