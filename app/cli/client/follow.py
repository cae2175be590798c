"""Follow a job to its end from its event stream: a live progress bar on a terminal
(phase, percent, bytes, ETA), plain lines elsewhere, then the result and an exit code."""

from __future__ import annotations

from typing import Any

import typer
from rich.progress import BarColumn, Progress, TaskID, TextColumn
from rich.text import Text

from app.cli.client.api import Api
from app.cli.client.render import (
    duration,
    err,
    exit_code,
    job_line,
    job_result,
    out,
    print_json,
    size,
    status,
    when,
)


class _Bar:
    """One rich progress bar fed with the job's progress events."""

    def __init__(self) -> None:
        self.progress = Progress(
            TextColumn("{task.description:<20}"),
            BarColumn(bar_width=32),
            TextColumn("{task.percentage:>5.1f}%"),
            TextColumn("{task.fields[bytes]}"),
            TextColumn("{task.fields[eta]}"),
            console=out,
            transient=True,
        )
        self.task: TaskID | None = None

    def __enter__(self) -> _Bar:
        self.progress.start()
        self.task = self.progress.add_task("queued", total=100, bytes="", eta="")
        return self

    def __exit__(self, *exc: object) -> None:
        self.progress.stop()

    def update(self, p: dict[str, Any]) -> None:
        assert self.task is not None
        done, total = p.get("bytes_done"), p.get("bytes_total")
        amount = f"{size(done)} / {size(total)}" if total else (size(done) if done else "")
        eta = p.get("seconds_remaining")
        self.progress.update(
            self.task,
            description=str(p.get("phase") or "working"),
            completed=float(p.get("percent") or 0.0),
            bytes=amount,
            eta=f"ETA {duration(eta)}" if eta else "",
        )

    def print(self, text: Text) -> None:
        self.progress.console.print(text)


def follow(api: Api, job: dict[str, Any], *, verbose: bool = False, live: bool = True) -> int:
    """Stream ``job``'s events until it ends; print its outcome; return the exit code.

    ``verbose`` prints every log line (``jobs tail``); otherwise phases, warnings and
    errors. ``live`` draws the bar (only on a terminal).
    """
    try:
        _follow(api, job, verbose, _Bar() if live and out.is_terminal else None)
    except KeyboardInterrupt:
        err.print(f"stopped following; the job goes on: podbackup jobs tail {job['id'][:8]}")
        return 130
    job = api.get(f"/v1/jobs/{job['id']}")  # the record, not the stream, has the last word
    print_outcome(job)
    return exit_code(job["status"])


def _follow(api: Api, job: dict[str, Any], verbose: bool, bar: _Bar | None) -> None:
    phase = None
    with bar or _NoBar():
        for ev in api.events(job["id"]):
            data = ev.data if isinstance(ev.data, dict) else {}
            line: Text | None = None
            if ev.event == "state" and "kind" in data:  # the whole job
                if bar:
                    bar.update(data.get("progress") or {})
            elif ev.event == "progress":
                if bar:
                    bar.update(data)
                elif not verbose and data.get("phase") and data["phase"] != phase:
                    # (verbose: the log has a line for each phase)
                    phase = data["phase"]
                    line = Text(f"phase: {phase}", style="dim")
            elif ev.event == "log":
                level = str(data.get("level", "info"))
                message = str(data.get("message", ""))
                if verbose or level in ("warning", "error"):
                    line = Text(f"{_clock(data)}{level}: {message}", style=_LEVEL.get(level, ""))
            elif ev.event == "state" and data.get("error") and not data.get("final"):
                e = data["error"]
                line = Text(f"attempt failed: {e.get('code')}: {e.get('message')}", style="yellow")
                line.append(" (it will be retried)" if e.get("retryable", True) else "")
            elif ev.event == "state" and verbose and data.get("status"):
                line = Text(f"{_clock(data)}status: {data['status']}", style="dim")
            if line is not None:
                (bar.print if bar else out.print)(line)


def wait_quietly(client: Api, job: dict[str, Any]) -> dict[str, Any]:
    """Until the job ends (no output); the finished job."""
    for _ in client.events(job["id"]):
        pass
    return dict(client.get(f"/v1/jobs/{job['id']}"))


def run_job(client: Api, job: dict[str, Any], wait: bool, as_json: bool) -> None:
    """Print a started job, or follow it to its end and exit with its code."""
    if not wait:
        if as_json:
            print_json(job)
        else:
            out.print(Text.assemble(f"{job['kind']} job {job['id']} ", status(job["status"])))
            out.print(f"follow it: podbackup jobs tail {job['id'][:8]}")
        return
    if as_json:
        final = wait_quietly(client, job)
        print_json(final)
        raise typer.Exit(exit_code(final["status"]))
    raise typer.Exit(follow(client, job))


def print_outcome(job: dict[str, Any]) -> None:
    (err if job["status"] in ("failed", "canceled") else out).print(job_line(job))
    for line in job_result(job):
        out.print(Text(f"  {line}"))


_LEVEL = {"warning": "yellow", "error": "red", "info": "", "debug": "dim"}


def _clock(data: dict[str, Any]) -> str:
    at = data.get("at")
    return f"{when(str(at))[11:]} " if at else ""


class _NoBar:
    def __enter__(self) -> None:
        return None

    def __exit__(self, *exc: object) -> None:
        return None
