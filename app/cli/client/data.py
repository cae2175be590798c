"""Client commands about a pod's data: snapshots, files, download, restore, export."""

from __future__ import annotations

import hashlib
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated, Any, BinaryIO
from urllib.parse import unquote

import typer
from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TransferSpeedColumn
from rich.text import Text

from app.cli.client.api import Api, ApiError, CliError, load_config
from app.cli.client.follow import follow, print_outcome, run_job, wait_quietly
from app.cli.client.render import (
    EXIT_CODES,
    OK,
    err,
    exit_code,
    handles_errors,
    out,
    print_json,
    print_preview,
    size,
    snapshot_label,
    status,
    table,
    when,
)

PANEL = "Client (talks to the API: PODBACKUP_URL, PODBACKUP_TOKEN)"
Json = Annotated[bool, typer.Option("--json", help="Print the API's JSON (for scripts).")]
Wait = Annotated[bool, typer.Option("--wait", help="Follow the job to its end.")]
PodArg = Annotated[
    str, typer.Argument(help="Pod id, unique name or id prefix.", metavar="POD", show_default=False)
]
SnapArg = Annotated[
    str,
    typer.Argument(
        help="Snapshot id (8 hex is enough) or 'latest'.", metavar="SNAPSHOT", show_default=False
    ),
]


def api() -> Api:
    return Api(load_config())


def _folder(path: str | None) -> str:
    return "/" + (path or "").lstrip("/")  # literal: a name may end in a space


def _until_indexed(fetch: Any) -> Any:
    """Call ``fetch()``; while the snapshot's browse index is being built, wait for it."""
    deadline = time.monotonic() + 180
    with err.status("indexing the snapshot's files…") if err.is_terminal else _nothing():
        while True:
            try:
                return fetch()
            except ApiError as exc:
                if exc.error != "SnapshotNotIndexed" or time.monotonic() > deadline:
                    raise
            time.sleep(1)


class _nothing:
    def __enter__(self) -> None:
        return None

    def __exit__(self, *exc: object) -> None:
        return None


# -- snapshots and files ---------------------------------------------------------------


@handles_errors
def snapshots(
    pod: PodArg,
    limit: Annotated[int, typer.Option(help="At most this many, newest first.")] = 50,
    as_json: Json = False,
) -> None:
    """A pod's snapshots, newest first."""
    with api() as client:
        found = client.pod(pod)
        items = client.items(f"/v1/pods/{found['id']}/snapshots", limit=limit)
    if as_json:
        print_json(items)
        return
    t = table(
        "ID", "TIME", "KIND", "TRIGGER", "FILES", "SIZE", "ADDED", "DATABASE", "STATUS", "PIN"
    )
    for s in items:
        summary = s.get("summary") or {}
        db = summary.get("database") or {}
        kind = Text(s.get("kind") or "-", style="yellow" if s.get("kind") == "safety" else "")
        t.add_row(
            s["short_id"],
            when(s["time"], seconds=False),
            kind,
            s.get("trigger") or "-",
            str(summary.get("total_files_processed", "-")),
            size(summary.get("total_bytes_processed")),
            size(summary.get("data_added")),
            db.get("name") or "-",
            status(summary.get("status") or ("-" if s.get("kind") == "imported" else "succeeded")),
            Text("pinned", style="cyan") if s.get("pinned") else "",
        )
    if not items:
        out.print("no snapshots yet: podbackup backup POD --wait")
        return
    out.print(t)
    if any(s.get("kind") == "safety" for s in items):
        out.print(
            "safety: the pod's files and database as they were just before a restore (to "
            "undo it); restored only by id, never as `latest`"
        )


@handles_errors
def files(
    pod: PodArg,
    snapshot: SnapArg,
    path: Annotated[str, typer.Argument(help="A folder, e.g. /files/uploads")] = "/",
    limit: Annotated[int, typer.Option(help="At most this many entries.")] = 1000,
    as_json: Json = False,
) -> None:
    """The entries of a folder in a snapshot (top: files/ and database/)."""
    folder = _folder(path)
    with api() as client:
        found = client.pod(pod)
        snap = client.snapshot_id(found["id"], snapshot)
        url = f"/v1/pods/{found['id']}/snapshots/{snap}/files"
        entries = _until_indexed(lambda: client.items(url, params={"path": folder}, limit=limit))
    if as_json:
        print_json(entries)
        return
    t = table("TYPE", "NAME", "SIZE", "MODIFIED", "MODE")
    for e in entries:
        name = Text(e["name"] + ("/" if e["type"] == "dir" else ""))
        if e["type"] == "dir":
            name.stylize("bold blue")
        elif e.get("link_target"):
            name.append(f" -> {e['link_target']}", style="dim")
        mode = f"{e['mode']:o}" if isinstance(e.get("mode"), int) else "-"
        t.add_row(e["type"], name, size(e.get("size")), when(e.get("mtime")), mode)
    out.print(t if entries else f"{folder} is empty")


@handles_errors
def download(
    pod: PodArg,
    snapshot: SnapArg,
    path: Annotated[str, typer.Argument(help="A file, or a folder (saved as .tar).")],
    output: Annotated[
        str | None, typer.Option("-o", "--output", help="Save here ('-': stdout).")
    ] = None,
    force: Annotated[bool, typer.Option("--force", help="Overwrite an existing file.")] = False,
    as_json: Json = False,
) -> None:
    """Download a file (or a folder as tar) from a snapshot, streamed to disk."""
    with api() as client:
        found = client.pod(pod)
        snap = client.snapshot_id(found["id"], snapshot)
        url = f"/v1/pods/{found['id']}/snapshots/{snap}/download"
        params = {"path": _folder(path)}
        # The listing builds the browse index on demand; a download needs it.
        listing = f"/v1/pods/{found['id']}/snapshots/{snap}/files"
        _until_indexed(lambda: client.get(listing, params={"path": "/", "limit": 1}))
        with client.stream(url, params) as r:
            name = _filename(r.headers.get("content-disposition"), path)
            total = int(r.headers["content-length"]) if "content-length" in r.headers else None
            written, digest, dest = _save(r.iter_bytes(1 << 16), output or name, force, total)
    if as_json:
        print_json({"path": dest, "bytes": written, "sha256": digest})
    elif dest != "-":
        err.print(f"saved {dest} ({size(written)}, sha256 {digest[:16]}…)")


def _filename(disposition: str | None, path: str) -> str:
    for part in (disposition or "").split(";"):
        key, _, value = part.strip().partition("=")
        if key == "filename*" and value.lower().startswith("utf-8''"):
            return Path(unquote(value[7:])).name
    return Path(path.rstrip("/")).name or "download"


def _save(
    chunks: Iterator[bytes], dest: str, force: bool, total: int | None
) -> tuple[int, str, str]:
    digest = hashlib.sha256()
    written = 0
    if dest == "-":
        for chunk in chunks:
            sys.stdout.buffer.write(chunk)
            digest.update(chunk)
            written += len(chunk)
        sys.stdout.buffer.flush()
        return written, digest.hexdigest(), dest
    target = Path(dest)
    if target.exists() and not force:
        raise CliError(f"{target} exists", hint="choose another -o FILE, or add --force")
    part = target.with_name(target.name + ".part")
    bar = Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        DownloadColumn(),
        TransferSpeedColumn(),
        console=err,
        transient=True,
        disable=not err.is_terminal,
    )
    try:
        with part.open("wb") as fh, bar:
            task = bar.add_task(target.name, total=total)
            for chunk in chunks:
                _write(fh, chunk)
                digest.update(chunk)
                written += len(chunk)
                bar.update(task, advance=len(chunk))
        part.replace(target)
    except BaseException:
        part.unlink(missing_ok=True)
        raise
    return written, digest.hexdigest(), str(target)


def _write(fh: BinaryIO, chunk: bytes) -> None:
    try:
        fh.write(chunk)
    except OSError as exc:
        raise CliError(f"cannot write {fh.name}: {exc.strerror}") from None


# -- restore and export ----------------------------------------------------------------


@handles_errors
def restore(
    pod: PodArg,
    snapshot: SnapArg,
    paths: Annotated[
        list[str] | None,
        typer.Option(
            "--path", help="Only this path of the pod's files, e.g. uploads/2024 (repeatable)."
        ),
    ] = None,
    no_files: Annotated[bool, typer.Option("--no-files", help="Only the database.")] = False,
    no_database: Annotated[bool, typer.Option("--no-database", help="Only the files.")] = False,
    into: Annotated[
        str | None, typer.Option("--into", help="Restore into another pod of the account.")
    ] = None,
    mirror: Annotated[
        bool, typer.Option("--mirror", help="Also delete files the snapshot does not have.")
    ] = False,
    no_safety_backup: Annotated[
        bool, typer.Option("--no-safety-backup", help="Skip the backup taken first.")
    ] = False,
    allow_unrecorded_dump: Annotated[
        bool,
        typer.Option(
            "--allow-unrecorded-dump",
            help="Load a database dump podbackup did not make (a snapshot found by a refresh).",
        ),
    ] = False,
    dry_run: Annotated[
        bool,
        typer.Option(
            "--dry-run",
            help="Only show what the restore would add, overwrite and delete (waits for it; "
            "the pod is not touched).",
        ),
    ] = False,
    wait: Wait = False,
    as_json: Json = False,
) -> None:
    """Restore a snapshot into the pod (a safety backup of its current state first)."""
    if no_files and no_database:
        raise CliError("--no-files and --no-database leave nothing to restore")
    with api() as client:
        found = client.pod(pod)
        snap = client.snapshot(found["id"], snapshot)
        # Said before anything starts: which snapshot `latest` (or the id) turned out to be.
        (err if as_json else out).print(
            f"{'previewing a restore of' if dry_run else 'restoring'} snapshot "
            f"{snap['short_id']} ({snapshot_label(snap)}, {when(snap['time'])}) into pod "
            f"{into or found['name']}"
        )
        body: dict[str, Any] = {
            "snapshot_id": snap["id"],
            "files": not no_files,
            "database": not no_database,
            "mode": "mirror" if mirror else "merge",
            "safety_backup": not no_safety_backup,
        }
        if allow_unrecorded_dump:
            body["allow_unrecorded_dump"] = True
        if paths:
            body["paths"] = paths
        if into:
            body["target_pod_id"] = client.pod(into)["id"]
        if dry_run:
            body["dry_run"] = True
            body.pop("safety_backup")
        job = client.post(f"/v1/pods/{found['id']}/restores", json=body)
        if dry_run:
            final = wait_quietly(client, job)
            if as_json:
                print_json(final)
            elif final["status"] == "succeeded":
                print_preview(final["result"]["preview"])
                out.print(f"restore it: the same command without --dry-run (preview job "
                          f"{final['id'][:8]})")  # fmt: skip
            else:
                print_outcome(final)
            raise typer.Exit(exit_code(final["status"]))
        if wait and not as_json:
            out.print(f"job {job['id'][:8]}")
        run_job(client, job, wait, as_json)


@handles_errors
def export(
    pod: PodArg,
    snapshot: Annotated[
        str | None, typer.Option("--snapshot", help="Export this snapshot (default: the pod now).")
    ] = None,
    wait: Wait = False,
    download_to: Annotated[
        str | None, typer.Option("--download", help="Then save the archive here (implies --wait).")
    ] = None,
    as_json: Json = False,
) -> None:
    """A one-time .tar.gz of the pod's files and database; prints its download link."""
    with api() as client:
        found = client.pod(pod)
        body = {"snapshot_id": client.snapshot_id(found["id"], snapshot)} if snapshot else None
        exp = client.post(f"/v1/pods/{found['id']}/exports", json=body)
        if not (wait or download_to):
            if as_json:
                print_json(exp)
            else:
                out.print(f"export {exp['id']} started (job {exp['job_id']})")
                out.print(f"follow it: podbackup jobs tail {exp['job_id'][:8]}")
            return
        job = client.get(f"/v1/jobs/{exp['job_id']}")
        code = exit_code(wait_quietly(client, job)["status"]) if as_json else follow(client, job)
        exp = client.get(f"/v1/exports/{exp['id']}")
        saved = None
        if code == OK and download_to and exp.get("download_url"):
            with client.stream(_local(client, exp["download_url"])) as r:
                saved = _save(r.iter_bytes(1 << 16), download_to, True, None)
    if as_json:
        print_json({**exp, "saved": saved and {"path": saved[2], "bytes": saved[0]}})
    elif exp.get("download_url"):
        out.print(f"download ({size(exp.get('size_bytes'))}, until {when(exp['expires_at'])}):")
        out.print(exp["download_url"], soft_wrap=True)
        if saved:
            out.print(f"saved {saved[2]} ({size(saved[0])})")
    raise typer.Exit(code)


def _local(client: Api, link: str) -> str:
    """The link as a path on the API this CLI talks to (the public URL may differ)."""
    if link.startswith(client.url):
        return link[len(client.url) :]
    at = link.find("/v1/exports/")
    return link[at:] if at >= 0 else link


@handles_errors
def undo(
    job: Annotated[
        str,
        typer.Argument(
            help="The restore job's id (8 hex is enough).",
            metavar="RESTORE_JOB_ID",
            show_default=False,
        ),
    ],
    wait: Wait = False,
    as_json: Json = False,
) -> None:
    """Undo a restore: put the pod back as it was before it, from the safety snapshot it
    took (pinned PODBACKUP_RESTORE_UNDO_DAYS days). The undo takes its own safety backup."""
    with api() as client:
        started = client.post(f"/v1/restores/{client.job_id(job)}/undo")
        if not as_json:
            out.print(
                f"undoing restore {job[:8]} from safety snapshot "
                f"{str(started['params'].get('snapshot_id'))[:8]}"
            )
        run_job(client, started, wait, as_json)


def register(app: typer.Typer, panel: str) -> None:
    for fn, name in (
        (snapshots, "snapshots"),
        (files, "files"),
        (download, "download"),
        (restore, "restore"),
        (undo, "undo"),
        (export, "export"),
    ):
        app.command(name, rich_help_panel=panel, epilog=EXIT_CODES)(fn)
