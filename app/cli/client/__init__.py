"""Client commands of the `podbackup` CLI: use the API from a terminal.

POD is a pod id, its unique name or a unique id prefix; JOB a job id or a unique prefix of
a recent one. Every command takes ``--json`` (the API's JSON, for scripts).
"""

from __future__ import annotations

from typing import Annotated, Any

import typer
from rich.text import Text

from app.cli.client import admin, backup_settings, copies, pins, pods, repo
from app.cli.client import data as client_data
from app.cli.client import history as client_history
from app.cli.client import settings as client_settings
from app.cli.client.api import Api, ClientConfig, load_config, save_config
from app.cli.client.data import PANEL, Json, PodArg, Wait, api
from app.cli.client.follow import follow, run_job
from app.cli.client.render import (
    EXIT_CODES,
    duration,
    exit_code,
    handles_errors,
    job_result,
    job_seconds,
    key_values,
    out,
    print_json,
    print_json_line,
    size,
    status,
    table,
    when,
)

JobArg = Annotated[
    str, typer.Argument(help="Job id or a unique prefix.", metavar="JOB", show_default=False)
]

pods_app = typer.Typer(help="Pods.", no_args_is_help=True)
jobs_app = typer.Typer(help="Jobs: list, show, cancel, follow.", no_args_is_help=True)
# (pods create/show/update/delete live in pods.py and are added to pods_app in register)


# -- login, pods -----------------------------------------------------------------------


@handles_errors
def login(
    token: Annotated[
        str,
        typer.Option(
            prompt="API token",
            hide_input=True,
            envvar="PODBACKUP_TOKEN",
            help="An API token (asked for when not given).",
        ),
    ],
    url: Annotated[str | None, typer.Option(help="API base URL.")] = None,
    as_json: Json = False,
) -> None:
    """Check a token against the API and save it with the URL (0600 config file)."""
    base = (url or load_config().url).rstrip("/")
    with Api(ClientConfig(url=base, token=token)) as client:
        me = client.get("/v1/me")
    path = save_config(base, token)
    if as_json:
        print_json({"config": str(path), "url": base, "me": me})
        return
    who = "an admin token" if me.get("scope") == "admin" else f"account {me.get('account_id')}"
    out.print(f"logged in to {base} as {who}; saved to {path}")


@pods_app.command("list")
@handles_errors
def pods_list(
    limit: Annotated[int, typer.Option(help="At most this many.")] = 200, as_json: Json = False
) -> None:
    """The pods this token sees."""
    with api() as client:
        pods = client.items("/v1/pods", limit=limit)
    if as_json:
        print_json(pods)
        return
    t = table("ID", "NAME", "APP", "FILES", "DATABASE", "CREATED")
    for p in pods:
        t.add_row(
            p["id"], p["name"], p["app"], _files(p), _database(p), when(p["created_at"], False)
        )
    out.print(t if pods else "no pods yet")


def _files(pod: dict[str, Any]) -> str:
    f = pod.get("files")
    if not f:
        return "-"
    if f["kind"] == "sftp":
        return f"sftp {f['username']}@{f['host']}:{f['port']}{f['path']}"
    return f"local {f['path']}"


def _database(pod: dict[str, Any]) -> str:
    d = pod.get("database")
    return f"{d['kind']} {d['name']}@{d['host']}" if d else "-"


# -- backup, jobs ----------------------------------------------------------------------


@handles_errors
def backup(pod: PodArg, wait: Wait = False, as_json: Json = False) -> None:
    """Back up a pod now (an already queued or running backup is followed instead)."""
    with api() as client:
        found = client.pod(pod)
        job = client.post(f"/v1/pods/{found['id']}/backups")
        if wait and not as_json:
            out.print(f"backing up pod {found['name']} ({found['id'][:8]}), job {job['id'][:8]}")
        run_job(client, job, wait, as_json)


@jobs_app.command("list")
@handles_errors
def jobs_list(
    pod: Annotated[str | None, typer.Argument(help="Only this pod's jobs.", metavar="POD")] = None,
    status_: Annotated[str | None, typer.Option("--status", help="e.g. failed")] = None,
    kind: Annotated[str | None, typer.Option(help="e.g. backup, restore, export")] = None,
    limit: Annotated[int, typer.Option(help="At most this many, newest first.")] = 20,
    as_json: Json = False,
) -> None:
    """Recent jobs, newest first."""
    params = {k: v for k, v in {"status": status_, "kind": kind}.items() if v}
    with api() as client:
        if pod:
            found = client.pod(pod)
            names = {found["id"]: found["name"]}
            jobs = client.items(f"/v1/pods/{found['id']}/jobs", params=params, limit=limit)
        else:
            jobs = client.items("/v1/jobs", params=params, limit=limit)
            names = (
                {p["id"]: p["name"] for p in client.items("/v1/pods", limit=10_000)} if jobs else {}
            )
    if as_json:
        print_json(jobs)
        return
    t = table("ID", "POD", "KIND", "STATUS", "TRIGGER", "CREATED", "TOOK", "DETAIL")
    for j in jobs:
        detail = (j.get("error") or {}).get("message") or (job_result(j) or [""])[0]
        if j["status"] == "running":
            p = j.get("progress") or {}
            detail = f"{p.get('phase') or ''} {p.get('percent') or 0:.0f}%"
        pod_id = j.get("pod_id")
        t.add_row(
            j["id"][:8],
            names.get(pod_id) or (pod_id or "-")[:8],
            j["kind"],
            status(j["status"]),
            j["trigger"],
            when(j["created_at"], seconds=False),
            duration(job_seconds(j)),
            detail,
        )
    out.print(t if jobs else "no jobs")


@jobs_app.command("show")
@handles_errors
def jobs_show(job: JobArg, as_json: Json = False) -> None:
    """One job: state, progress, error and result."""
    with api() as client:
        j = client.get(f"/v1/jobs/{client.job_id(job)}")
    if as_json:
        print_json(j)
        return
    p = j.get("progress") or {}
    rows: list[tuple[str, Any]] = [
        ("job", j["id"]),
        ("pod", j.get("pod_id") or "-"),
        ("kind", f"{j['kind']} ({j['trigger']}, plan {j['plan']})"),
        ("status", status(j["status"])),
        ("attempt", f"{j['attempt']} of {j['max_attempts']}"),
        ("created", when(j["created_at"])),
        ("started", when(j.get("started_at"))),
        ("finished", when(j.get("finished_at"))),
        ("took", duration(job_seconds(j))),
    ]
    if j["status"] in ("queued", "running") or p.get("bytes_total"):
        amount = f"  {size(p.get('bytes_done'))} of {size(p['bytes_total'])}"
        rows.append(
            (
                "progress",
                f"{p.get('phase') or '-'} {p.get('percent') or 0:.1f}%"
                + (amount if p.get("bytes_total") else ""),
            )
        )
    if j.get("error"):
        e = j["error"]
        rows.append(("error", Text(f"{e['code']}: {e['message']}", style="red")))
        if e.get("hint"):
            rows.append(("hint", e["hint"]))
    rows += [("result", line) for line in job_result(j)]
    out.print(key_values(rows))


@jobs_app.command("cancel")
@handles_errors
def jobs_cancel(job: JobArg, as_json: Json = False) -> None:
    """Cancel a queued or running job."""
    with api() as client:
        j = client.post(f"/v1/jobs/{client.job_id(job)}/cancel")
    if as_json:
        print_json(j)
        return
    out.print(
        Text.assemble(f"cancel requested: {j['kind']} {j['id'][:8]} is ", status(j["status"]))
    )


@jobs_app.command("tail")
@handles_errors
def jobs_tail(job: JobArg, as_json: Json = False) -> None:
    """Follow a job's log and progress to its end (--json: one event per line)."""
    with api() as client:
        j = client.get(f"/v1/jobs/{client.job_id(job)}")
        if as_json:
            for ev in client.events(j["id"]):
                print_json_line({"event": ev.event, "id": ev.id, "data": ev.data})
            final = client.get(f"/v1/jobs/{j['id']}")
            raise typer.Exit(exit_code(final["status"]))
        out.print(f"{j['kind']} job {j['id']} of pod {j.get('pod_id') or '-'}")
        raise typer.Exit(follow(client, j, verbose=True))


def register(app: typer.Typer) -> None:
    """Add the client commands to the `podbackup` app (beside the operator commands)."""
    app.info.epilog = EXIT_CODES
    app.command(rich_help_panel=PANEL)(login)
    app.add_typer(pods_app, name="pods", rich_help_panel=PANEL)
    app.command(rich_help_panel=PANEL, epilog=EXIT_CODES)(backup)
    app.add_typer(jobs_app, name="jobs", rich_help_panel=PANEL, epilog=EXIT_CODES)
    pods_app.command("create")(pods.pods_create)
    pods_app.command("show")(pods.pods_show)
    pods_app.command("update")(pods.pods_update)
    pods_app.command("delete")(pods.pods_delete)
    app.add_typer(backup_settings.settings_app, name="settings", rich_help_panel=PANEL)
    app.add_typer(copies.copy_app, name="copy", rich_help_panel=PANEL)
    client_data.register(app, PANEL)
    pins.register(app, PANEL)
    client_history.register(app, PANEL)
    client_settings.register(app, PANEL)
    app.command("check", rich_help_panel=PANEL, epilog=EXIT_CODES)(repo.check)
    app.command("prune", rich_help_panel=PANEL, epilog=EXIT_CODES)(repo.prune)
    app.command("refresh", rich_help_panel=PANEL, epilog=EXIT_CODES)(repo.refresh)
    app.command("snapshot", rich_help_panel=PANEL)(repo.snapshot)
    app.command("stats", rich_help_panel=PANEL)(repo.stats)
    app.add_typer(repo.retention_app, name="retention", rich_help_panel=PANEL)
    app.add_typer(repo.exports_app, name="exports", rich_help_panel=PANEL)
    app.command("whoami", rich_help_panel=PANEL)(admin.whoami)
    app.command("health", rich_help_panel=PANEL)(admin.health)
    app.command("providers", rich_help_panel=PANEL)(admin.providers)
    app.command("audit", rich_help_panel=PANEL)(admin.audit)
    app.command("fleet", rich_help_panel=PANEL)(admin.fleet)
    app.add_typer(admin.accounts_app, name="accounts", rich_help_panel=PANEL)
    app.add_typer(admin.tokens_app, name="tokens", rich_help_panel=PANEL)
    app.add_typer(admin.webhooks_app, name="webhooks", rich_help_panel=PANEL)
