"""Client commands about a pod's backup settings: verify, restore kit, status."""

from __future__ import annotations

import sys
from typing import Any

import typer
from rich.text import Text

from app.cli.client.data import Json, PodArg, api
from app.cli.client.render import (
    EXIT_CODES,
    FAILED,
    OK,
    handles_errors,
    key_values,
    out,
    print_json,
    size,
    status,
    table,
    when,
)

# -- settings: verify, restore kit, status ---------------------------------------------

MARK = {"ok": ("✓", "green"), "warning": ("!", "yellow"), "error": ("✗", "red")}


@handles_errors
def verify(pod: PodArg, as_json: Json = False) -> None:
    """Check the pod's backup target for real (connect, write, read, list, delete…)."""
    with api() as client:
        result = client.post(f"/v1/pods/{client.pod(pod)['id']}/backup-settings/verify")
    if as_json:
        print_json(result)
        raise typer.Exit(OK if result["ok"] else FAILED)
    t = table("", "CHECK", "DETAIL")
    for c in result["checks"]:
        mark, style = MARK.get(c["level"], ("-", "dim"))
        detail = Text(c["detail"])
        if c.get("hint") and c["level"] != "ok":
            detail.append(f"\nhint: {c['hint']}", style="dim")
        t.add_row(Text(mark, style=style), c["name"], detail)
    out.print(t)
    verdict = ("ok", "green") if result["ok"] else ("FAILED", "bold red")
    out.print(Text.assemble(f"{result['repository']}: ", verdict))
    raise typer.Exit(OK if result["ok"] else FAILED)


@handles_errors
def restore_kit(pod: PodArg, as_json: Json = False) -> None:
    """Print what plain restic needs to restore without this service (shows the password)."""
    with api() as client:
        kit = client.get(f"/v1/pods/{client.pod(pod)['id']}/restore-kit")
    if as_json:
        print_json(kit)
        return
    write = sys.stdout.write
    write(f"# repository {kit['repository']}\n# paste into a shell:\n{kit['env_block']}\n")
    for command in kit["commands"]:
        write(f"# {command['title']}\n{command['command']}\n")
    write("\n" + "".join(f"# note: {note}\n" for note in kit["notes"]))


@handles_errors
def pod_status(pod: PodArg, as_json: Json = False) -> None:
    """A pod's backup overview: last backup, next run, snapshots, size, verification."""
    with api() as client:
        found = client.pod(pod)
        st = client.get(f"/v1/pods/{found['id']}/status")
    if as_json:
        print_json(st)
        return
    last = st.get("last_backup") or {}
    active = st.get("active_job")
    verification = st.get("last_verification") or {}
    rows: list[tuple[str, Any]] = [
        ("pod", f"{found['name']} ({found['id']})"),
        ("configured", "yes" if st["configured"] else "no: PUT …/backup-settings"),
        ("schedule", {True: "on", False: "off", None: "-"}[st.get("schedule_enabled")]),
        ("last backup", Text.assemble(when(last.get("at")), " ", status(last.get("status")))),
        ("last success", when(st.get("last_success_at"))),
        ("last snapshot", _last_snapshot(st)),
        ("next run", when(st.get("next_run_at"))),
        ("snapshots", str(st["snapshot_count"])),
        ("repository size", size(st.get("repository_size_bytes"))),
        ("last verification", _verification(verification)),
        (
            "active job",
            f"{active['kind']} {active['id'][:8]} {active['status']}" if active else "-",
        ),
    ]
    out.print(key_values(rows))


def _last_snapshot(st: dict[str, Any]) -> str:
    ident = (st.get("last_snapshot_id") or "-")[:8]
    kind = st.get("last_snapshot_kind")
    if kind == "safety":
        return f"{ident} (safety, taken by a restore; `latest` is the newest backup)"
    return f"{ident} ({kind})" if kind else ident


def _verification(v: dict[str, Any]) -> str:
    if not v:
        return "-"
    parts = [f"{k} {when(x) if str(k).endswith('_at') else x}" for k, x in v.items()]
    return ", ".join(parts)


def register(app: typer.Typer, panel: str) -> None:
    for fn, name in ((verify, "verify"), (restore_kit, "restore-kit"), (pod_status, "status")):
        app.command(name, rich_help_panel=panel, epilog=EXIT_CODES)(fn)
