"""Client commands that keep a snapshot: pin, unpin, and the backup before an app update."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from app.cli.client.api import ApiError
from app.cli.client.data import Json, PodArg, SnapArg, api
from app.cli.client.render import EXIT_CODES, FAILED, err, handles_errors, out, print_json, when


def pin_text(s: dict[str, Any]) -> str:
    """How a snapshot's pin reads in a line: `pinned until …: note`, or empty."""
    pin = s.get("pin") if s.get("pinned") else None
    if not pin:
        return ""
    until = f"until {when(pin['until'])}" if pin.get("until") else "until unpinned"
    return f"pinned {until}" + (f": {pin['note']}" if pin.get("note") else "")


@handles_errors
def pin(
    pod: PodArg,
    snapshot: SnapArg,
    note: Annotated[
        str | None, typer.Option("--note", help="Why it is kept (one line, ≤500 characters).")
    ] = None,
    days: Annotated[
        int | None,
        typer.Option("--days", min=1, help="Keep it this many days (default: until unpinned)."),
    ] = None,
    as_json: Json = False,
) -> None:
    """Pin a snapshot: retention keeps it (for --days, or until unpinned)."""
    body: dict[str, Any] = {"note": note, "days": days}
    with api() as client:
        found = client.pod(pod)
        snap = client.snapshot_id(found["id"], snapshot)
        s = client.request("PUT", f"/v1/pods/{found['id']}/snapshots/{snap}/pin", json=body)
    if as_json:
        print_json(s)
        return
    out.print(f"snapshot {s['short_id']} ({when(s['time'])}) {pin_text(s)}")


@handles_errors
def unpin(pod: PodArg, snapshot: SnapArg, as_json: Json = False) -> None:
    """Unpin a snapshot: retention treats it like any other again."""
    with api() as client:
        found = client.pod(pod)
        snap = client.snapshot_id(found["id"], snapshot)
        s = client.request("DELETE", f"/v1/pods/{found['id']}/snapshots/{snap}/pin")
    if as_json:
        print_json(s)
        return
    out.print(f"snapshot {s['short_id']} ({when(s['time'])}) is no longer pinned")


@handles_errors
def before_update(
    pod: PodArg,
    app_version: Annotated[
        str, typer.Option("--app-version", help="The version the pod's app runs now.")
    ],
    note: Annotated[str | None, typer.Option("--note", help="Added to the pin's note.")] = None,
    pin_days: Annotated[
        int | None,
        typer.Option("--pin-days", min=1, help="Keep the snapshot this many days (default 30)."),
    ] = None,
    forever: Annotated[
        bool, typer.Option("--forever", help="Keep it until unpinned (instead of --pin-days).")
    ] = False,
    timeout: Annotated[
        int, typer.Option("--timeout", min=1, max=3600, help="Seconds to wait for the backup.")
    ] = 900,
    as_json: Json = False,
) -> None:
    """Back up a pod before updating its app: waits for the snapshot, pins it, and prints
    the rollback command. Exit 1: the backup failed, do not update."""
    body: dict[str, Any] = {"app_version": app_version, "timeout_seconds": timeout}
    if note:
        body["note"] = note
    if forever:
        body["pin_days"] = None
    elif pin_days is not None:
        body["pin_days"] = pin_days
    with api() as client:
        found = client.pod(pod)
        if not as_json:
            err.print(f"backing up pod {found['name']} before the update (up to {timeout} s)…")
        try:
            answer = client.post(
                f"/v1/pods/{found['id']}/before-update", json=body, timeout=timeout + 30
            )
        except ApiError as exc:
            if exc.error == "BackupBeforeUpdateFailed":
                exc.code = FAILED
            raise
    if as_json:
        print_json(answer)
        raise typer.Exit(0 if "snapshot" in answer else FAILED)
    if "snapshot" not in answer:  # 202: still running at the timeout
        out.print(f"the backup is still running (job {answer['job']['id'][:8]}): {answer['hint']}")
        raise typer.Exit(FAILED)
    s = answer["snapshot"]
    out.print(f"snapshot {s['short_id']} ({when(s['time'])}) {pin_text(s)}")
    out.print(f"roll back with: podbackup restore {found['id'][:8]} {s['short_id']} --mirror")


def register(app: typer.Typer, panel: str) -> None:
    for fn, name in ((pin, "pin"), (unpin, "unpin"), (before_update, "before-update")):
        app.command(name, rich_help_panel=panel, epilog=EXIT_CODES)(fn)
