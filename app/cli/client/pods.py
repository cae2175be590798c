"""Client commands that write a pod and its backup settings: pods create, show, update,
delete; settings show, set, delete.

Secrets (SFTP password or key, database password, S3 secret key) are never taken from
the command line, where every user of the machine sees them (``ps``): an option names the
environment variable (``--sftp-password-env VAR``) or file that holds them."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Annotated, Any

import typer

from app.cli.client.api import CliError
from app.cli.client.data import Json, PodArg, api
from app.cli.client.render import handles_errors, key_values, out, print_json, when

Opt = typer.Option


def secret_from_env(var: str | None, what: str) -> str | None:
    """The value of the environment variable ``var`` (an option names it)."""
    if var is None:
        return None
    value = os.environ.get(var)
    if value is None:
        raise CliError(
            f"{var} is not set (it should hold the {what})",
            hint=f"export {var}=… first; secrets are read from the environment, never argv",
            error="UsageError",
        )
    return value


def _read_body(source: str | None) -> dict[str, Any]:
    if source is None:
        return {}
    try:
        text = sys.stdin.read() if source == "-" else Path(source).read_text()
        body = json.loads(text)
    except (OSError, ValueError) as exc:
        raise CliError(
            f"cannot read a JSON object from {source}: {exc}", error="UsageError"
        ) from None
    if not isinstance(body, dict):
        raise CliError(f"{source} holds no JSON object", error="UsageError")
    return body


def _files(
    sftp_host: str | None,
    sftp_port: int | None,
    sftp_user: str | None,
    sftp_path: str | None,
    sftp_password_env: str | None,
    sftp_key_file: Path | None,
    local: str | None,
    current: dict[str, Any] | None,
) -> dict[str, Any] | None:
    """The `files` section from the flags (over the pod's current one); None: unchanged."""
    if local:
        return {"kind": "local", "path": local}
    given = (sftp_host, sftp_port, sftp_user, sftp_path, sftp_password_env, sftp_key_file)
    if all(v is None for v in given):
        return None
    base = current if current and current.get("kind") == "sftp" else {}
    files: dict[str, Any] = {
        "kind": "sftp",
        "host": sftp_host or base.get("host"),
        "port": sftp_port or base.get("port") or 22,
        "username": sftp_user or base.get("username"),
        "path": sftp_path or base.get("path") or "/",
    }
    if base.get("host_key") and files["host"] == base.get("host"):
        files["host_key"] = base["host_key"]
    missing = [k for k in ("host", "username") if not files[k]]
    if missing:
        raise CliError(
            f"an SFTP source needs --sftp-{missing[0].replace('username', 'user')}",
            error="UsageError",
        )
    if (password := secret_from_env(sftp_password_env, "SFTP password")) is not None:
        files["password"] = password
    if sftp_key_file is not None:
        try:
            files["private_key"] = sftp_key_file.read_text()
        except OSError as exc:
            raise CliError(
                f"cannot read {sftp_key_file}: {exc.strerror}", error="UsageError"
            ) from None
    return files


def _database(
    kind: str | None,
    host: str | None,
    port: int | None,
    name: str | None,
    user: str | None,
    password_env: str | None,
    current: dict[str, Any] | None,
) -> dict[str, Any] | None:
    if all(v is None for v in (kind, host, port, name, user, password_env)):
        return None
    base = current or {}
    db: dict[str, Any] = {
        "kind": kind or base.get("kind") or "postgres",
        "host": host or base.get("host"),
        "name": name or base.get("name"),
        "username": user or base.get("username"),
    }
    if port or base.get("port"):
        db["port"] = port or base.get("port")
    missing = [k for k in ("host", "name", "username") if not db[k]]
    if missing:
        flag = {"host": "--db-host", "name": "--db-name", "username": "--db-user"}[missing[0]]
        raise CliError(f"a database needs {flag}", error="UsageError")
    if (password := secret_from_env(password_env, "database password")) is not None:
        db["password"] = password
    return db


SftpHost = Annotated[str | None, Opt("--sftp-host", help="Files over SFTP: the host.")]
SftpPort = Annotated[int | None, Opt("--sftp-port", help="SFTP port (22).")]
SftpUser = Annotated[str | None, Opt("--sftp-user", help="SFTP username.")]
SftpPath = Annotated[str | None, Opt("--sftp-path", help="The pod's folder on the server.")]
SftpPassword = Annotated[
    str | None,
    Opt("--sftp-password-env", metavar="VAR", help="Environment variable with the password."),
]
SftpKey = Annotated[Path | None, Opt("--sftp-key-file", help="File with an OpenSSH private key.")]
Local = Annotated[str | None, Opt("--local", help="Files from a local folder (admin only).")]
DbKind = Annotated[str | None, Opt("--db-kind", help="postgres, mysql or mariadb.")]
DbHost = Annotated[str | None, Opt("--db-host", help="Database host.")]
DbPort = Annotated[int | None, Opt("--db-port", help="Database port.")]
DbName = Annotated[str | None, Opt("--db-name", help="Database name.")]
DbUser = Annotated[str | None, Opt("--db-user", help="Database username.")]
DbPassword = Annotated[
    str | None,
    Opt("--db-password-env", metavar="VAR", help="Environment variable with the password."),
]
FromJson = Annotated[
    str | None,
    Opt("--from-json", metavar="FILE", help="The API's JSON body from a file ('-': stdin)."),
]


@handles_errors
def pods_create(
    name: Annotated[str, typer.Argument(help="A name unique in the account.", metavar="NAME")],
    app: Annotated[
        str | None, Opt("--app", help="The app it runs, e.g. wikijs (required).")
    ] = None,
    account: Annotated[
        str | None, Opt("--account", help="Admin tokens: the owner's account id.")
    ] = None,
    sftp_host: SftpHost = None,
    sftp_port: SftpPort = None,
    sftp_user: SftpUser = None,
    sftp_path: SftpPath = None,
    sftp_password_env: SftpPassword = None,
    sftp_key_file: SftpKey = None,
    local: Local = None,
    db_kind: DbKind = None,
    db_host: DbHost = None,
    db_port: DbPort = None,
    db_name: DbName = None,
    db_user: DbUser = None,
    db_password_env: DbPassword = None,
    from_json: FromJson = None,
    as_json: Json = False,
) -> None:
    """Create a pod: its files (SFTP or a local folder) and database."""
    body = {**_read_body(from_json), "name": name}
    if app:
        body["app"] = app
    if not body.get("app"):
        raise CliError(
            "which app does the pod run?",
            hint="add --app NAME, e.g. --app wikijs",
            error="UsageError",
        )
    files = _files(
        sftp_host, sftp_port, sftp_user, sftp_path, sftp_password_env, sftp_key_file, local, None
    )
    database = _database(db_kind, db_host, db_port, db_name, db_user, db_password_env, None)
    body |= {k: v for k, v in (("files", files), ("database", database)) if v is not None}
    if account:
        body["account_id"] = account
    with api() as client:
        pod = client.post("/v1/pods", json=body)
    _show(pod, as_json, f"created pod {pod['name']} ({pod['id']})")


@handles_errors
def pods_show(pod: PodArg, as_json: Json = False) -> None:
    """One pod: its files, database and hooks (secrets only as set / not set)."""
    with api() as client:
        found = client.pod(pod)
    _show(found, as_json)


@handles_errors
def pods_update(
    pod: PodArg,
    name: Annotated[str | None, Opt("--name", help="Rename the pod.")] = None,
    app: Annotated[str | None, Opt("--app", help="The app it runs.")] = None,
    sftp_host: SftpHost = None,
    sftp_port: SftpPort = None,
    sftp_user: SftpUser = None,
    sftp_path: SftpPath = None,
    sftp_password_env: SftpPassword = None,
    sftp_key_file: SftpKey = None,
    local: Local = None,
    no_files: Annotated[bool, Opt("--no-files", help="Remove the file source.")] = False,
    db_kind: DbKind = None,
    db_host: DbHost = None,
    db_port: DbPort = None,
    db_name: DbName = None,
    db_user: DbUser = None,
    db_password_env: DbPassword = None,
    no_database: Annotated[bool, Opt("--no-database", help="Remove the database.")] = False,
    from_json: FromJson = None,
    as_json: Json = False,
) -> None:
    """Change a pod (rename, move its files or database); omitted secrets are kept."""
    with api() as client:
        found = client.pod(pod)
        body = _read_body(from_json)
        files = _files(
            sftp_host,
            sftp_port,
            sftp_user,
            sftp_path,
            sftp_password_env,
            sftp_key_file,
            local,
            found.get("files"),
        )
        database = _database(
            db_kind, db_host, db_port, db_name, db_user, db_password_env, found.get("database")
        )
        for key, value, drop in (("files", files, no_files), ("database", database, no_database)):
            if drop:
                body[key] = None
            elif value is not None:
                body[key] = value
        body |= {k: v for k, v in (("name", name), ("app", app)) if v is not None}
        if not body:
            raise CliError(
                "nothing to change", hint="see --help for the options", error="UsageError"
            )
        updated = client.request("PATCH", f"/v1/pods/{found['id']}", json=body)
    _show(updated, as_json, f"updated pod {updated['name']} ({updated['id']})")


@handles_errors
def pods_delete(
    pod: PodArg,
    yes: Annotated[bool, Opt("--yes", help="Do not ask.")] = False,
    as_json: Json = False,
) -> None:
    """Delete a pod and its stored secrets (its bucket's backups stay)."""
    with api() as client:
        found = client.pod(pod)
        if not yes and not typer.confirm(f"delete pod {found['name']} ({found['id']})?"):
            raise CliError("not deleted", error="Canceled", code=1)
        client.request("DELETE", f"/v1/pods/{found['id']}")
    if as_json:
        print_json({"deleted": found["id"]})
    else:
        out.print(f"deleted pod {found['name']} ({found['id']}); its bucket is untouched")


def _show(pod: dict[str, Any], as_json: bool, headline: str | None = None) -> None:
    if as_json:
        print_json(pod)
        return
    if headline:
        out.print(headline)
    f, d, h = pod.get("files") or {}, pod.get("database") or {}, pod.get("hooks") or {}
    rows: list[tuple[str, Any]] = [
        ("pod", pod["id"]),
        ("name", pod["name"]),
        ("app", pod["app"]),
        ("account", pod["account_id"]),
    ]
    if f.get("kind") == "sftp":
        secret = "password" if f.get("password_set") else "key" if f.get("private_key_set") else ""
        rows.append(
            ("files", f"sftp {f['username']}@{f['host']}:{f['port']}{f['path']} {secret}".strip())
        )
        rows.append(("host key", f.get("host_key") or "- (pinned on first connect)"))
    else:
        rows.append(("files", f"local {f['path']}" if f else "-"))
    db = f"{d['kind']} {d['username']}@{d['host']}:{d['port']}/{d['name']}" if d else "-"
    rows.append(("database", db + (" (password set)" if d.get("password_set") else "")))
    if h:
        rows.append(
            ("hooks", f"stop {h.get('stop_url') or '-'}, start {h.get('start_url') or '-'}")
        )
    rows.append(("created", when(pod.get("created_at"))))
    out.print(key_values(rows))
