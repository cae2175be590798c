"""Client commands about a pod's repository: check, prune, retention preview, refresh,
one snapshot, size statistics, one export."""

from __future__ import annotations

from typing import Annotated, Any

import typer
from rich.text import Text

from app.cli.client.data import Json, PodArg, SnapArg, Wait, api
from app.cli.client.follow import run_job
from app.cli.client.pins import pin_text
from app.cli.client.render import (
    handles_errors,
    key_values,
    out,
    print_json,
    size,
    snapshot_label,
    status,
    table,
    when,
)

Opt = typer.Option
retention_app = typer.Typer(
    help="Retention: what forget would keep and remove.", no_args_is_help=True
)
exports_app = typer.Typer(help="Exports: state and download link.", no_args_is_help=True)


@handles_errors
def check(
    pod: PodArg,
    read_data_subset: Annotated[
        str | None,
        Opt("--read-data", metavar="n/N|x%", help="Read this part of the data now (e.g. 10%)."),
    ] = None,
    structure_only: Annotated[
        bool, Opt("--structure-only", help="Check the structure, read no data.")
    ] = False,
    no_trial_restore: Annotated[
        bool, Opt("--no-trial-restore", help="Skip the trial restore of dump and files.")
    ] = False,
    wait: Wait = False,
    as_json: Json = False,
) -> None:
    """Check the repository (rotating read-data subset) and trial-restore the latest backup."""
    body: dict[str, Any] = {}
    if structure_only:
        body["read_data_subset"] = None
    elif read_data_subset:
        body["read_data_subset"] = read_data_subset
    if no_trial_restore:
        body["trial_restore"] = False
    with api() as client:
        found = client.pod(pod)
        job = client.post(f"/v1/pods/{found['id']}/checks", json=body or None)
        run_job(client, job, wait, as_json)


@handles_errors
def prune(pod: PodArg, wait: Wait = False, as_json: Json = False) -> None:
    """Forget snapshots by the pod's retention policy, then prune (see `retention preview`)."""
    with api() as client:
        job = client.post(f"/v1/pods/{client.pod(pod)['id']}/prune")
        run_job(client, job, wait, as_json)


@retention_app.command("preview")
@handles_errors
def retention_preview(
    pod: PodArg,
    keep_last: Annotated[int | None, Opt("--keep-last", help="Try this policy instead.")] = None,
    keep_daily: Annotated[int | None, Opt("--keep-daily")] = None,
    keep_weekly: Annotated[int | None, Opt("--keep-weekly")] = None,
    keep_monthly: Annotated[int | None, Opt("--keep-monthly")] = None,
    keep_yearly: Annotated[int | None, Opt("--keep-yearly")] = None,
    as_json: Json = False,
) -> None:
    """What forget would keep and remove under the pod's policy (or the one given)."""
    keeps = {
        "keep_last": keep_last,
        "keep_daily": keep_daily,
        "keep_weekly": keep_weekly,
        "keep_monthly": keep_monthly,
        "keep_yearly": keep_yearly,
    }
    body = {k: v for k, v in keeps.items() if v is not None} or None
    with api() as client:
        found = client.pod(pod)
        preview = client.post(f"/v1/pods/{found['id']}/retention/preview", json=body)
    if as_json:
        print_json(preview)
        return
    policy = ", ".join(f"{k.removeprefix('keep_')} {v}" for k, v in preview["policy"].items())
    out.print(f"policy: {policy}")
    t = table("", "ID", "TIME", "KIND", "WHY")
    for verdict, items in (("keep", preview["keep"]), ("remove", preview["remove"])):
        for s in items:
            mark = Text(verdict, style="green" if verdict == "keep" else "red")
            why = ", ".join(s.get("reasons") or []) or "-"
            t.add_row(mark, s["short_id"], when(s["time"], False), s.get("kind") or "-", why)
    out.print(t)
    for note in preview.get("notes") or []:
        out.print(f"note: {note}")
    if preview.get("kept_because_pinned"):
        pinned = ", ".join(k["short_id"] for k in preview["kept_because_pinned"])
        out.print(f"kept only because pinned: {pinned} (podbackup unpin POD SNAPSHOT)")
    out.print(f"{len(preview['keep'])} kept, {len(preview['remove'])} removed by `podbackup prune`")


@handles_errors
def refresh(pod: PodArg, wait: Wait = False, as_json: Json = False) -> None:
    """Re-read the repository: add snapshots made outside the service, drop forgotten ones."""
    with api() as client:
        job = client.post(f"/v1/pods/{client.pod(pod)['id']}/snapshots/refresh")
        run_job(client, job, wait, as_json)


@handles_errors
def snapshot(pod: PodArg, snap: SnapArg, as_json: Json = False) -> None:
    """One snapshot: what made it, its summary and tags."""
    with api() as client:
        s = client.snapshot(client.pod(pod)["id"], snap)
    if as_json:
        print_json(s)
        return
    summary = s.get("summary") or {}
    rows: list[tuple[str, Any]] = [
        ("snapshot", s["id"]),
        ("short id", s["short_id"]),
        ("time", when(s["time"])),
        ("kind", snapshot_label(s)),
        ("job", s.get("job_id") or "-"),
        ("files", str(summary.get("total_files_processed", "-"))),
        ("size", size(summary.get("total_bytes_processed"))),
        ("added", size(summary.get("data_added"))),
        ("tags", ", ".join(s.get("tags") or []) or "-"),
        ("pin", pin_text(s) or "-"),
    ]
    out.print(key_values(rows))


@handles_errors
def stats(pod: PodArg, as_json: Json = False) -> None:
    """Repository size over time, 30-day growth and a monthly cost estimate."""
    with api() as client:
        st = client.get(f"/v1/pods/{client.pod(pod)['id']}/stats")
    if as_json:
        print_json(st)
        return
    growth = st.get("growth_30d") or {}
    cost = st.get("cost_estimate") or {}
    rows: list[tuple[str, Any]] = [
        (
            "repository size",
            f"{size(st.get('repository_size_bytes'))} ({when(st.get('repository_size_at'))})",
        ),
        ("snapshots", str(st.get("snapshot_count", "-"))),
        ("provider", st.get("provider") or "-"),
        ("growth, 30 days", _pairs(growth)),
        ("cost estimate", _pairs(cost)),
        ("samples", str(len(st.get("samples") or []))),
    ]
    out.print(key_values(rows))


def _pairs(value: Any) -> str:
    if not isinstance(value, dict):
        return "-" if value is None else str(value)
    return ", ".join(f"{k} {v}" for k, v in value.items()) or "-"


@exports_app.command("show")
@handles_errors
def exports_show(
    export_id: Annotated[str, typer.Argument(help="The export's id.", metavar="EXPORT")],
    as_json: Json = False,
) -> None:
    """An export's state, size and (once ready) its download link."""
    with api() as client:
        exp = client.get(f"/v1/exports/{export_id}")
    if as_json:
        print_json(exp)
        return
    rows: list[tuple[str, Any]] = [
        ("export", exp["id"]),
        ("status", status(exp.get("status"))),
        ("size", size(exp.get("size_bytes"))),
        ("expires", when(exp.get("expires_at"))),
        ("link", exp.get("download_url") or "-"),
    ]
    out.print(key_values(rows))
