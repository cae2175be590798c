"""The demo `make run` sets up: an account, a pod with files and a database, a target.

- the demo account and its token (var/dev/demo-account);
- the pod's files: a small app folder (var/demo/pod-files) served by a local SFTP server
  (``devtools.sftp``) whose host key is kept in var/demo, so the pod's pinned key holds;
- the pod's database: ``podbackup_demo_app`` on the service's PostgreSQL server, owned by
  the login ``podbackup_demo`` (skipped, with a note, when that server refuses);
- the backup target: a local S3 server (moto) with the bucket ``demo-pod-backups``, checking
  signatures as a provider does (its key is moto's, new on every start). moto
  keeps it in memory; ``DemoRun.persist()`` (called by the dev server every few seconds
  and on exit) copies its objects to var/demo/s3/, and the next start puts them back, so
  snapshots survive a restart. Without moto: a local restic repository under var/local.

Everything is reused on the next run; secrets live in var/demo/secrets.json (0600).
Each step goes through the public API, as a pod owner's control panel would.
"""

from __future__ import annotations

import asyncio
import json
import os
import secrets
import shlex
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from devtools.demo_servers import DemoError, S3Server, Spawn, start_s3, start_sftp

__all__ = ["DemoError", "DemoOptions", "DemoRun", "Spawn", "bootstrap"]

ROOT = Path(__file__).resolve().parents[1]
STATE = ROOT / "var" / "dev"
DEMO = ROOT / "var" / "demo"
POD_NAME = "demo"
BUCKET = "demo-pod-backups"
TOUR_BUCKET = "wiki-backups"  # empty, for the README's tour (a bucket per pod)


def _env_port(name: str, default: int) -> int:
    return int(os.environ.get(name) or default)


@dataclass
class DemoOptions:
    """Where the demo keeps its state and what it uses; the defaults are `make run`'s
    (ports from PODBACKUP_DEMO_SFTP_PORT / PODBACKUP_DEMO_S3_PORT, 0 = any free one)."""

    demo: Path = DEMO
    state: Path = STATE
    local_root: Path = ROOT / "var" / "local"
    sftp_port: int = field(default_factory=lambda: _env_port("PODBACKUP_DEMO_SFTP_PORT", 2222))
    s3_port: int = field(default_factory=lambda: _env_port("PODBACKUP_DEMO_S3_PORT", 9000))
    db_server_url: str | None = None  # libpq URL of an admin login; None: the service's server
    db_name: str = "podbackup_demo_app"
    db_user: str = "podbackup_demo"

    @property
    def pod_files(self) -> Path:
        return self.demo / "pod-files"


def _client(url: str, token: str) -> httpx.Client:
    return httpx.Client(base_url=url, headers={"Authorization": f"Bearer {token}"}, timeout=60)


def _check(r: httpx.Response, what: str) -> Any:
    if r.status_code >= 400:
        raise DemoError(f"{what}: HTTP {r.status_code} {r.text[:500]}")
    return r.json() if r.content else None


def _secrets(paths: DemoOptions) -> dict[str, str]:
    """Generated once: the SFTP and database passwords of the demo (0600 file)."""
    path = paths.demo / "secrets.json"
    data: dict[str, str] = json.loads(path.read_text()) if path.exists() else {}
    changed = False
    for key in ("sftp_password", "db_password"):
        if not data.get(key):
            data[key] = secrets.token_hex(12)
            changed = True
    if changed:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as fh:
            json.dump(data, fh, indent=2)
    return data


def _account(url: str, admin: httpx.Client, paths: DemoOptions) -> tuple[str, str]:
    saved = paths.state / "demo-account"
    if saved.exists():
        account_id, token = saved.read_text().split()
        r = httpx.get(f"{url}/v1/me", headers={"Authorization": f"Bearer {token}"})
        if r.status_code == 200:
            return account_id, token
    body = _check(
        admin.post("/v1/accounts", json={"name": "demo", "email": "demo@example.com"}),
        "create the demo account",
    )
    account_id = body["id"]
    token = _check(
        admin.post(f"/v1/accounts/{account_id}/tokens", json={"name": "demo"}),
        "create the demo token",
    )["token"]
    paths.state.mkdir(parents=True, exist_ok=True)
    saved.write_text(f"{account_id} {token}\n")
    saved.chmod(0o600)
    return account_id, token


def _find_pod(api: httpx.Client, paths: DemoOptions) -> dict[str, Any] | None:
    saved = paths.demo / "pod-id"
    wanted = saved.read_text().strip() if saved.exists() else None
    pods = _check(api.get("/v1/pods", params={"limit": 200}), "list pods")["items"]
    named = [p for p in pods if p["name"] == POD_NAME]
    for pod in named:
        if pod["id"] == wanted:
            return dict(pod)
    return dict(named[0]) if named else None


def _database(paths: DemoOptions, password: str) -> tuple[dict[str, Any] | None, str | None]:
    """The pod's database config, or None and why not."""
    from sqlalchemy.engine import make_url

    from app.config import get_settings
    from devtools.demo_data import ensure_database

    url = make_url(paths.db_server_url or get_settings().sync_database_url)
    host, port = url.host or "127.0.0.1", url.port or 5432
    admin = url.username or "postgres"
    try:
        db = asyncio.run(
            ensure_database(host, port, admin, url.password, password, paths.db_name, paths.db_user)
        )
    except Exception as exc:  # any refusal: the demo goes on without a database
        return None, f"demo database skipped ({type(exc).__name__}: {exc})"
    config = {
        "kind": "postgres",
        "host": db.host,
        "port": db.port,
        "name": db.name,
        "username": db.username,
        "password": password,
    }
    return config, None


def _settings_body(s3: S3Server | None, paths: DemoOptions) -> dict[str, Any]:
    if s3 is None:
        target: dict[str, Any] = {"kind": "local", "path": str(paths.local_root / "demo-repo")}
    else:
        target = {
            "kind": "s3",
            "endpoint": s3.url,
            "bucket": BUCKET,
            "region": "us-east-1",
            "access_key_id": s3.key_id,
            "secret_access_key": s3.secret,
        }
    return {
        "target": target,
        "schedule": {"enabled": True, "window_start": "01:00", "window_end": "05:00"},
        "retention": {"keep_last": 10, "keep_daily": 7, "keep_weekly": 4},
    }


@dataclass
class DemoRun:
    lines: list[str]  # to print
    s3: S3Server | None
    token: str
    pod_id: str

    def persist(self) -> None:
        """Keep the demo S3 bucket's objects on disk (call every few seconds and on exit,
        while its server still runs)."""
        if self.s3 is not None:
            self.s3.mirror.sync()


def bootstrap(
    url: str, admin_token: str, spawn: Spawn, paths: DemoOptions | None = None
) -> DemoRun:
    """Create or reuse the whole demo; what to print, and how to keep its S3 data."""
    from devtools.demo_data import make_pod_files

    paths = paths or DemoOptions()
    paths.demo.mkdir(parents=True, exist_ok=True)
    paths.local_root.mkdir(parents=True, exist_ok=True)
    keys = _secrets(paths)
    notes: list[str] = []
    with _client(url, admin_token) as admin:
        account_id, token = _account(url, admin, paths)
        with _client(url, token) as api:
            pod = _find_pod(api, paths)
            current = None
            if pod is not None:
                r = api.get(f"/v1/pods/{pod['id']}/backup-settings")
                current = r.json() if r.status_code == 200 else None
            # The kept objects are only worth restoring for a repository the pod knows.
            keep = bool(current and current["target"]["kind"] == "s3" and current["repository_id"])
            if make_pod_files(paths.pod_files):
                notes.append(f"sample pod files created in {paths.pod_files}")
            sftp_port, host_key = start_sftp(
                spawn, paths.demo, paths.pod_files, paths.sftp_port, keys["sftp_password"]
            )
            s3 = start_s3(spawn, paths.demo, paths.s3_port, keep, BUCKET)
            if s3 is not None:
                s3.mirror.ensure_bucket(TOUR_BUCKET)
            if s3 is None:
                notes.append("moto_server not found: the demo backs up into var/local/demo-repo")
            elif keep and not s3.mirror.has(BUCKET, "config"):
                notes.append(
                    "the demo S3 data was lost (var/demo/s3 is gone): the demo pod was "
                    "re-created, its old snapshots are gone"
                )
                assert pod is not None
                _check(api.delete(f"/v1/pods/{pod['id']}"), "delete the stale demo pod")
                pod = None
            database, why_not = _database(paths, keys["db_password"])
            if why_not:
                notes.append(why_not)
            pod = _save_pod(api, pod, account_id, sftp_port, host_key, keys, database)
            (paths.demo / "pod-id").write_text(pod["id"] + "\n")
            # A local target is admin-only; an S3 target is what an owner sets.
            owner = admin if s3 is None else api
            _check(
                owner.put(f"/v1/pods/{pod['id']}/backup-settings", json=_settings_body(s3, paths)),
                "save the demo backup settings",
            )
            verified = _check(
                owner.post(f"/v1/pods/{pod['id']}/backup-settings/verify"),
                "verify the demo backup settings",
            )
    env_file = _write_env(paths, url, token, pod["id"], sftp_port, s3, keys)
    lines = _summary(url, token, pod, sftp_port, s3, keys, verified, notes, env_file)
    return DemoRun(lines=lines, s3=s3, token=token, pod_id=pod["id"])


def _write_env(
    paths: DemoOptions,
    url: str,
    token: str,
    pod_id: str,
    sftp_port: int,
    s3: S3Server | None,
    keys: dict[str, str],
) -> Path:
    """var/demo/env.sh: `source` it for the README's tour (0600: it holds secrets)."""
    values = {
        "PODBACKUP_URL": url,
        "PODBACKUP_TOKEN": token,
        "DEMO_POD": pod_id,
        "DEMO_SFTP_PORT": str(sftp_port),
        "DEMO_SFTP_PASSWORD": keys["sftp_password"],
    }
    if s3 is not None:
        values |= {
            "DEMO_S3_ENDPOINT": s3.url,
            "DEMO_S3_KEY": s3.key_id,
            "DEMO_S3_SECRET": s3.secret,
        }
    path = paths.demo / "env.sh"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write("# Written by `make run`: the demo's addresses and secrets (development only).\n")
        fh.writelines(f"export {k}={shlex.quote(v)}\n" for k, v in values.items())
    return path


def _save_pod(
    api: httpx.Client,
    pod: dict[str, Any] | None,
    account_id: str,
    sftp_port: int,
    host_key: str,
    keys: dict[str, str],
    database: dict[str, Any] | None,
) -> dict[str, Any]:
    """Create the pod, or bring an existing one in line with this run's servers."""
    files = {
        "kind": "sftp",
        "host": "127.0.0.1",
        "port": sftp_port,
        "username": "pod",
        "password": keys["sftp_password"],
        "host_key": host_key,
        "path": "/",
    }
    if pod is None:
        body = {"name": POD_NAME, "app": "wikijs", "files": files, "database": database}
        return dict(_check(api.post("/v1/pods", json=body), "create the demo pod"))
    body = {"files": files, "database": database}
    return dict(_check(api.patch(f"/v1/pods/{pod['id']}", json=body), "update the demo pod"))


def _shown(path: Path) -> str:
    """Relative to the project when inside it (what a README reader types)."""
    try:
        return str(path.relative_to(ROOT))
    except ValueError:
        return str(path)


def _summary(
    url: str,
    token: str,
    pod: dict[str, Any],
    sftp_port: int,
    s3: S3Server | None,
    keys: dict[str, str],
    verified: dict[str, Any],
    notes: list[str],
    env_file: Path,
) -> list[str]:
    failed = [c for c in verified["checks"] if c["level"] == "error"]
    lines = ["", "demo:"]
    lines.append(f"  pod 'demo' {pod['id']}  (app {pod['app']})")
    lines.append(
        f"  files: sftp://pod@127.0.0.1:{sftp_port}/  password {keys['sftp_password']}"
        "  (serving var/demo/pod-files)"
    )
    if pod.get("database"):
        db = pod["database"]
        lines.append(f"  database: postgres {db['name']} on {db['host']}:{db['port']}")
    if s3 is not None:
        lines.append(f"  S3: {s3.url}  key {s3.key_id} / {s3.secret}  bucket {BUCKET}")
        lines.append("      (signatures are checked: a wrong secret fails verify's `credentials`)")
        lines.append(f"      and the empty bucket {TOUR_BUCKET} for the README's tour")
        if s3.restored:
            lines.append(f"      {s3.restored} objects put back from var/demo/s3")
    lines.append(
        "  settings verified: "
        + ("ok" if verified["ok"] else "FAILED: " + "; ".join(c["detail"] for c in failed))
    )
    lines += [f"  note: {n}" for n in notes]
    lines += [
        "",
        f"demo token: {token}",
        f"  export PODBACKUP_URL={url} PODBACKUP_TOKEN={token}",
        f"  (or: source {_shown(env_file)}, which also has the demo's SFTP and S3 secrets)",
        "next, in another terminal (`source .venv/bin/activate` puts podbackup on PATH):",
        "  podbackup backup demo --wait",
    ]
    return lines
