"""Client commands for a pod's backup settings: settings show, set, delete."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from app.cli.client.api import CliError
from app.cli.client.data import Json, PodArg, api
from app.cli.client.pods import FromJson, _read_body, secret_from_env
from app.cli.client.render import handles_errors, key_values, out, print_json, when

Opt = typer.Option
settings_app = typer.Typer(
    help="A pod's backup settings: target, schedule, retention.", no_args_is_help=True
)
KEEP = ("last", "daily", "weekly", "monthly", "yearly", "within_days")


@settings_app.command("show")
@handles_errors
def settings_show(pod: PodArg, as_json: Json = False) -> None:
    """The pod's target, schedule, retention and verification (the secret only as set)."""
    with api() as client:
        st = client.get(f"/v1/pods/{client.pod(pod)['id']}/backup-settings")
    _show(st, as_json)


@settings_app.command("set")
@handles_errors
def settings_set(
    pod: PodArg,
    endpoint: Annotated[
        str | None, Opt("--s3-endpoint", help="S3 endpoint, e.g. s3.eu-central-1.amazonaws.com")
    ] = None,
    bucket: Annotated[str | None, Opt("--bucket", help="The pod's own bucket.")] = None,
    region: Annotated[str | None, Opt("--region", help="S3 region (usually inferred).")] = None,
    access_key_id: Annotated[str | None, Opt("--access-key-id", help="S3 access key id.")] = None,
    secret_env: Annotated[
        str | None,
        Opt(
            "--secret-access-key-env",
            metavar="VAR",
            help="Environment variable with the S3 secret key (omit to keep the stored one).",
        ),
    ] = None,
    local: Annotated[
        str | None, Opt("--local", help="A local repository folder (admin only).")
    ] = None,
    lock_days: Annotated[
        int | None,
        Opt("--lock-days", help="Lock mode: the backup key cannot delete (0 turns it off)."),
    ] = None,
    maintenance_key_id: Annotated[
        str | None, Opt("--maintenance-key-id", help="Lock mode: the key that may prune.")
    ] = None,
    maintenance_secret_env: Annotated[
        str | None,
        Opt(
            "--maintenance-secret-env",
            metavar="VAR",
            help="Environment variable with the maintenance key's secret.",
        ),
    ] = None,
    schedule: Annotated[
        bool | None, Opt("--schedule/--no-schedule", help="Nightly backups on or off.")
    ] = None,
    window: Annotated[
        str | None, Opt("--window", metavar="HH:MM-HH:MM", help="Nightly window, e.g. 01:00-05:00")
    ] = None,
    timezone: Annotated[str | None, Opt("--timezone", help="e.g. Europe/Berlin")] = None,
    keep_last: Annotated[int | None, Opt("--keep-last", help="Retention: last N.")] = None,
    keep_daily: Annotated[int | None, Opt("--keep-daily", help="Daily snapshots.")] = None,
    keep_weekly: Annotated[int | None, Opt("--keep-weekly", help="Weekly snapshots.")] = None,
    keep_monthly: Annotated[int | None, Opt("--keep-monthly", help="Monthly snapshots.")] = None,
    keep_yearly: Annotated[int | None, Opt("--keep-yearly", help="Yearly snapshots.")] = None,
    keep_within_days: Annotated[
        int | None,
        Opt("--keep-within-days", help="Every snapshot of the last N days (lock mode: >= lock)."),
    ] = None,
    from_json: FromJson = None,
    as_json: Json = False,
) -> None:
    """Save the backup settings; sections not given keep their stored values."""
    body = _read_body(from_json)
    with api() as client:
        found = client.pod(pod)
        current: dict[str, Any] = {}
        locking = (lock_days, maintenance_key_id, maintenance_secret_env)
        if local is None and (
            (endpoint is None and (bucket or access_key_id or region or secret_env))
            or any(v is not None for v in locking)
        ):
            current = _current(client, found["id"])
        target = _target(endpoint, bucket, region, access_key_id, secret_env, local, current)
        if target is None and any(v is not None for v in locking):
            target = _target(None, None, None, None, None, None, current, force=True)
        if target is not None and any(v is not None for v in locking):
            target["immutable"] = _immutable(current, *locking)
        if target is not None:
            body["target"] = target
        if schedule is not None or window or timezone:
            sched: dict[str, Any] = dict(
                body.get("schedule") or _current(client, found["id"]).get("schedule") or {}
            )
            if schedule is not None:
                sched["enabled"] = schedule
            if window:
                start, sep, end = window.partition("-")
                if not sep:
                    raise CliError(f"--window {window}: give HH:MM-HH:MM", error="UsageError")
                sched |= {"window_start": start.strip(), "window_end": end.strip()}
            if timezone:
                sched["timezone"] = timezone
            body["schedule"] = sched
        keeps = (keep_last, keep_daily, keep_weekly, keep_monthly, keep_yearly, keep_within_days)
        if any(k is not None for k in keeps):
            retention = dict(
                body.get("retention") or _current(client, found["id"]).get("retention") or {}
            )
            retention |= {f"keep_{n}": k for n, k in zip(KEEP, keeps, strict=True) if k is not None}
            body["retention"] = retention
        if not body:
            raise CliError("nothing to save", hint="see --help for the options", error="UsageError")
        saved = client.request("PUT", f"/v1/pods/{found['id']}/backup-settings", json=body)
    if not as_json:
        out.print(f"saved; check it for real: podbackup verify {found['name']}")
    _show(saved, as_json)


def _current(client: Any, pod_id: str) -> dict[str, Any]:
    try:
        return dict(client.get(f"/v1/pods/{pod_id}/backup-settings"))
    except CliError as exc:
        if getattr(exc, "status", None) == 404:
            return {}
        raise


def _target(
    endpoint: str | None,
    bucket: str | None,
    region: str | None,
    access_key_id: str | None,
    secret_env: str | None,
    local: str | None,
    current: dict[str, Any],
    *,
    force: bool = False,
) -> dict[str, Any] | None:
    if local:
        return {"kind": "local", "path": local}
    if not force and all(v is None for v in (endpoint, bucket, region, access_key_id, secret_env)):
        return None
    base = current.get("target") or {}
    if base.get("kind") != "s3":
        base = {}
    target: dict[str, Any] = {
        "kind": "s3",
        "endpoint": endpoint or base.get("endpoint"),
        "bucket": bucket or base.get("bucket"),
        "access_key_id": access_key_id or base.get("access_key_id"),
    }
    if region or base.get("region"):
        target["region"] = region or base.get("region")
    for key, flag in (("endpoint", "--s3-endpoint"), ("bucket", "--bucket")):
        if not target[key]:
            raise CliError(f"an S3 target needs {flag}", error="UsageError")
    if not target["access_key_id"]:
        raise CliError("an S3 target needs --access-key-id", error="UsageError")
    if (secret := secret_from_env(secret_env, "S3 secret access key")) is not None:
        target["secret_access_key"] = secret
    return target


def _immutable(
    current: dict[str, Any],
    lock_days: int | None,
    key_id: str | None,
    secret_env: str | None,
) -> dict[str, Any] | None:
    """Lock mode from the flags over the stored one (the stored secret is kept server-side
    while the maintenance key id stays the same)."""
    stored = (current.get("target") or {}).get("immutable") or {}
    days = lock_days if lock_days is not None else stored.get("lock_days")
    if not days:
        if key_id or secret_env:
            raise CliError("a maintenance key needs --lock-days", error="UsageError")
        return None
    result: dict[str, Any] = {"lock_days": days}
    key = key_id or (stored.get("maintenance_key") or {}).get("access_key_id")
    if key:
        result["maintenance_key"] = {"access_key_id": key}
        secret = secret_from_env(secret_env, "maintenance key's secret access key")
        if secret is not None:
            result["maintenance_key"]["secret_access_key"] = secret
    elif secret_env:
        raise CliError("--maintenance-secret-env needs --maintenance-key-id", error="UsageError")
    return result


@settings_app.command("delete")
@handles_errors
def settings_delete(
    pod: PodArg,
    yes: Annotated[bool, Opt("--yes", help="Do not ask.")] = False,
    as_json: Json = False,
) -> None:
    """Delete the settings: the stored secret and the repository password are destroyed."""
    with api() as client:
        found = client.pod(pod)
        if not yes and not typer.confirm(
            f"delete the backup settings of {found['name']}? Save the restore kit first "
            "(podbackup restore-kit): without its password the backups cannot be read"
        ):
            raise CliError("not deleted", error="Canceled", code=1)
        client.request("DELETE", f"/v1/pods/{found['id']}/backup-settings")
    if as_json:
        print_json({"deleted": found["id"]})
    else:
        out.print(f"deleted the backup settings of {found['name']}")


def _show(st: dict[str, Any], as_json: bool) -> None:
    if as_json:
        print_json(st)
        return
    t, s, r = st["target"], st["schedule"], st["retention"]
    if t["kind"] == "s3":
        secret = "secret set" if t.get("secret_access_key_set") else "NO secret"
        target = f"s3 {t['endpoint']} bucket {t['bucket']} ({t.get('provider_name')}, {secret})"
    else:
        target = f"local {t['path']}"
    lock = "off"
    if immutable := t.get("immutable"):
        key = immutable.get("maintenance_key")
        maintenance = f"maintenance key {key['access_key_id']}" if key else "NO maintenance key"
        lock = f"{immutable['lock_days']} day(s), {maintenance}"
    verified = "-"
    if st.get("verified_at"):
        verified = f"{when(st['verified_at'])} {'ok' if st.get('verified_ok') else 'FAILED'}"
    window = f"{s['window_start']}-{s['window_end']} {s['timezone']}"
    out.print(
        key_values(
            [
                ("target", target),
                ("repository", st["repository"]),
                ("lock mode", lock),
                ("schedule", f"{'on' if s['enabled'] else 'off'}, {window}"),
                ("retention", ", ".join(f"{k.removeprefix('keep_')} {v}" for k, v in r.items())),
                ("verified", verified),
            ]
        )
    )
