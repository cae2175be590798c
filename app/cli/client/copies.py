"""Client commands for a pod's second copy: copy show, set, delete, verify, now, lag, kit."""

from __future__ import annotations

import sys
from typing import Annotated, Any

import typer
from rich.text import Text

from app.cli.client.api import CliError
from app.cli.client.backup_settings import KEEP, _target
from app.cli.client.data import Json, PodArg, Wait, api
from app.cli.client.follow import run_job
from app.cli.client.render import handles_errors, key_values, out, print_json, when

Opt = typer.Option
copy_app = typer.Typer(
    help="A pod's second copy: another bucket filled with `restic copy` after each backup.",
    no_args_is_help=True,
)


def _current(client: Any, pod_id: str) -> dict[str, Any]:
    try:
        return dict(client.get(f"/v1/pods/{pod_id}/copy-settings"))
    except CliError as exc:
        if getattr(exc, "status", None) == 404:
            return {}
        raise


@copy_app.command("show")
@handles_errors
def copy_show(pod: PodArg, as_json: Json = False) -> None:
    """The second copy's target, repository, retention and verification."""
    with api() as client:
        st = client.get(f"/v1/pods/{client.pod(pod)['id']}/copy-settings")
    _show(st, as_json)


@copy_app.command("set")
@handles_errors
def copy_set(
    pod: PodArg,
    endpoint: Annotated[str | None, Opt("--s3-endpoint", help="The copy's S3 endpoint.")] = None,
    bucket: Annotated[str | None, Opt("--bucket", help="The copy's own bucket.")] = None,
    region: Annotated[str | None, Opt("--region", help="S3 region (usually inferred).")] = None,
    access_key_id: Annotated[
        str | None,
        Opt("--access-key-id", help="S3 key id (the copy's own; may differ from the primary's)."),
    ] = None,
    secret_env: Annotated[
        str | None,
        Opt(
            "--secret-access-key-env",
            metavar="VAR",
            help="Environment variable with the S3 secret key (omit to keep the stored one).",
        ),
    ] = None,
    local: Annotated[str | None, Opt("--local", help="A local folder (admin only).")] = None,
    keep_last: Annotated[int | None, Opt("--keep-last", help="Retention: last N.")] = None,
    keep_daily: Annotated[int | None, Opt("--keep-daily", help="Daily snapshots.")] = None,
    keep_weekly: Annotated[int | None, Opt("--keep-weekly", help="Weekly snapshots.")] = None,
    keep_monthly: Annotated[int | None, Opt("--keep-monthly", help="Monthly snapshots.")] = None,
    keep_yearly: Annotated[int | None, Opt("--keep-yearly", help="Yearly snapshots.")] = None,
    as_json: Json = False,
) -> None:
    """Save the second copy; sections not given keep their stored values."""
    body: dict[str, Any] = {}
    with api() as client:
        found = client.pod(pod)
        current: dict[str, Any] = {}
        if endpoint is None and local is None and (bucket or access_key_id or region or secret_env):
            current = _current(client, found["id"])
        target = _target(endpoint, bucket, region, access_key_id, secret_env, local, current)
        if target is not None:
            body["target"] = target
        keeps = (keep_last, keep_daily, keep_weekly, keep_monthly, keep_yearly)
        if any(k is not None for k in keeps):
            retention = dict(_current(client, found["id"]).get("retention") or {})
            retention |= {f"keep_{n}": k for n, k in zip(KEEP, keeps, strict=True) if k is not None}
            body["retention"] = retention
        if not body:
            raise CliError("nothing to save", hint="see --help for the options", error="UsageError")
        saved = client.request("PUT", f"/v1/pods/{found['id']}/copy-settings", json=body)
    if not as_json:
        out.print(f"saved; check it for real: podbackup copy verify {found['name']}")
    _show(saved, as_json)


@copy_app.command("delete")
@handles_errors
def copy_delete(
    pod: PodArg,
    yes: Annotated[bool, Opt("--yes", help="Do not ask.")] = False,
    as_json: Json = False,
) -> None:
    """Stop the second copy: its stored secret and password are destroyed (not the bucket)."""
    with api() as client:
        found = client.pod(pod)
        if not yes and not typer.confirm(
            f"delete the second copy of {found['name']}? Save its restore kit first "
            "(podbackup copy kit): without its password the copy cannot be read"
        ):
            raise CliError("not deleted", error="Canceled", code=1)
        client.request("DELETE", f"/v1/pods/{found['id']}/copy-settings")
    if as_json:
        print_json({"deleted": found["id"]})
    else:
        out.print(f"deleted the second copy of {found['name']}")


@copy_app.command("verify")
@handles_errors
def copy_verify(pod: PodArg, as_json: Json = False) -> None:
    """Check the copy's target for real (as `podbackup verify` does for the primary)."""
    with api() as client:
        result = client.post(f"/v1/pods/{client.pod(pod)['id']}/copy-settings/verify")
    if as_json:
        print_json(result)
    else:
        for c in result["checks"]:
            out.print(Text(f"{c['level']:8} {c['name']}: {c['detail']}"))
        out.print(f"{result['repository']}: {'ok' if result['ok'] else 'FAILED'}")
    raise typer.Exit(0 if result["ok"] else 1)


@copy_app.command("now")
@handles_errors
def copy_now(pod: PodArg, wait: Wait = False, as_json: Json = False) -> None:
    """Copy the primary's snapshots the copy lacks now (a `copy` job)."""
    with api() as client:
        job = client.post(f"/v1/pods/{client.pod(pod)['id']}/copies")
        run_job(client, job, wait, as_json)


@copy_app.command("lag")
@handles_errors
def copy_lag(pod: PodArg, as_json: Json = False) -> None:
    """How far the second copy is behind the primary."""
    with api() as client:
        lag = client.get(f"/v1/pods/{client.pod(pod)['id']}/copy-lag")
    if as_json:
        print_json(lag)
        return
    hours = round(float(lag["seconds_behind"]) / 3600, 1)
    out.print(
        key_values(
            [
                ("behind", f"{lag['snapshots_behind']} snapshot(s), {hours} h"),
                ("last copy", when(lag["last_copy_at"]) if lag["last_copy_at"] else "-"),
                ("last status", lag["last_status"] or "-"),
                ("alerted", "yes (copy.lagging)" if lag["alerted"] else "no"),
            ]
        )
    )


@copy_app.command("kit")
@handles_errors
def copy_kit(pod: PodArg, as_json: Json = False) -> None:
    """Print what plain restic needs to restore from the copy (shows its password)."""
    with api() as client:
        kit = client.get(f"/v1/pods/{client.pod(pod)['id']}/copy-settings/restore-kit")
    if as_json:
        print_json(kit)
        return
    write = sys.stdout.write
    write(f"# repository {kit['repository']}\n# paste into a shell:\n{kit['env_block']}\n")
    for command in kit["commands"]:
        write(f"# {command['title']}\n{command['command']}\n")


def _show(st: dict[str, Any], as_json: bool) -> None:
    if as_json:
        print_json(st)
        return
    t, r = st["target"], st["retention"]
    target = f"s3 {t['endpoint']} bucket {t['bucket']}" if t["kind"] == "s3" else t["path"]
    verified = "-"
    if st.get("verified_at"):
        verified = f"{when(st['verified_at'])} {'ok' if st.get('verified_ok') else 'FAILED'}"
    out.print(
        key_values(
            [
                ("target", target),
                ("repository", st["repository"]),
                ("retention", ", ".join(f"{k.removeprefix('keep_')} {v}" for k, v in r.items())),
                ("verified", verified),
            ]
        )
    )
