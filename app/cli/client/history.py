"""Client commands `diff` (what changed between two snapshots) and `history` (every
version of one file)."""

from __future__ import annotations

from typing import Annotated, Any

import typer
from rich.text import Text

from app.cli.client.api import Api, load_config
from app.cli.client.render import EXIT_CODES, handles_errors, out, print_json, size, table, when

Json = Annotated[bool, typer.Option("--json", help="Print the API's JSON (for scripts).")]
PodArg = Annotated[
    str, typer.Argument(help="Pod id, unique name or id prefix.", metavar="POD", show_default=False)
]
CHANGE_STYLE = {
    "added": "green",
    "removed": "red",
    "modified": "yellow",
    "metadata": "cyan",
    "type": "magenta",
}
PAGE = 200


def _diff_pages(client: Api, url: str, params: dict[str, Any], limit: int) -> dict[str, Any]:
    """The first page's answer with the items of as many pages as ``limit`` needs."""
    answer: dict[str, Any] = client.get(url, params={**params, "limit": min(PAGE, limit)})
    items = list(answer["items"])
    page = 1
    while len(items) < min(limit, answer["total"]) and answer["items"]:
        page += 1
        more = client.get(url, params={**params, "limit": answer["limit"], "page": page})
        if not more["items"]:
            break
        items += more["items"]
    answer["items"] = items[:limit]
    return answer


def _sizes(item: dict[str, Any]) -> str:
    before, after = item.get("size_before"), item.get("size_after")
    if item["change"] == "added":
        return size(after)
    if item["change"] == "removed" or before == after:
        return size(before)
    return f"{size(before)} → {size(after)}"


def _count(value: Any) -> str:
    return "-" if value is None else str(value)


def _mode(value: Any) -> str:
    return f"{value:o}" if isinstance(value, int) else "-"


def _detail(item: dict[str, Any]) -> str:
    """What changed in a metadata-only change."""
    parts = []
    if item.get("mode_before") != item.get("mode_after"):
        parts.append(f"mode {_mode(item.get('mode_before'))} → {_mode(item.get('mode_after'))}")
    if item.get("mtime_before") != item.get("mtime_after"):
        parts.append(f"mtime {when(item.get('mtime_before'))} → {when(item.get('mtime_after'))}")
    return ", ".join(parts)


@handles_errors
def diff(
    pod: PodArg,
    snapshot: Annotated[
        str, typer.Argument(help="Snapshot id (8 hex is enough) or 'latest'.", metavar="SNAPSHOT")
    ] = "latest",
    against: Annotated[
        str | None,
        typer.Option("--against", help="Compare with this snapshot (default: the one before)."),
    ] = None,
    change: Annotated[
        str | None,
        typer.Option(help="Only added, removed, modified, metadata or type changes."),
    ] = None,
    limit: Annotated[int, typer.Option(help="At most this many entries.")] = 1000,
    as_json: Json = False,
) -> None:
    """What changed between two snapshots: files added, removed, modified, metadata."""
    params: dict[str, Any] = {}
    if against:
        params["against"] = against
    if change:
        params["change"] = change
    with Api(load_config()) as client:
        found = client.pod(pod)
        url = f"/v1/pods/{found['id']}/snapshots/{snapshot}/diff"
        answer = _diff_pages(client, url, params, max(1, limit))
    if as_json:
        print_json(answer)
        return
    a, b = answer["snapshot"], answer["against"]
    out.print(
        f"{b['short_id']} ({when(b['time'], seconds=False)}) → {a['short_id']} "
        f"({when(a['time'], seconds=False)}), from the {answer['source']}"
    )
    totals = answer["totals"]
    line = Text()
    for name, style in CHANGE_STYLE.items():
        t = totals[name]
        if t["entries"]:
            line.append(f"{name} {t['entries']}", style=style)
            if t.get("bytes"):
                line.append(f" ({size(t['bytes'])})")
            line.append("  ")
    out.print(line if line.plain else "no changes")
    if answer["items"]:
        t = table("CHANGE", "PATH", "TYPE", "SIZE", "DETAIL")
        for item in answer["items"]:
            t.add_row(
                Text(item["change"], style=CHANGE_STYLE.get(item["change"], "")),
                item["path"],
                item.get("type") or "-",
                _sizes(item),
                _detail(item) if item["change"] == "metadata" else "",
            )
        out.print(t)
    if answer["total"] > len(answer["items"]):
        out.print(f"… {answer['total'] - len(answer['items'])} more (--limit)")
    for db in answer.get("database") or []:
        out.print(f"database dump {db['file']}: {db['change']}")
        changed = [x for x in db["tables"] if x["change"] != "unchanged"]
        if changed:
            t = table("TABLE", "ROWS BEFORE", "ROWS AFTER", "CHANGE")
            for x in changed:
                t.add_row(
                    x["table"], _count(x["rows_before"]), _count(x["rows_after"]), x["change"]
                )
            out.print(t)


@handles_errors
def history(
    pod: PodArg,
    path: Annotated[str, typer.Argument(help="A file, e.g. /files/uploads/logo.png")],
    as_json: Json = False,
) -> None:
    """Every version of one file across the pod's snapshots, newest first."""
    with Api(load_config()) as client:
        found = client.pod(pod)
        answer = client.get(f"/v1/pods/{found['id']}/files/history", params={"path": path})
    if as_json:
        print_json(answer)
        return
    t = table("VERSION", "SIZE", "MODIFIED", "FROM", "TO", "SNAPSHOTS")
    for v in answer["versions"]:
        label = (v.get("content_id") or "-")[:12] + ("" if v["exact"] else " ~")
        t.add_row(
            label,
            size(v.get("size")),
            when(v.get("mtime")),
            f"{v['first_snapshot']['short_id']} {when(v['first_snapshot']['time'], seconds=False)}",
            f"{v['last_snapshot']['short_id']} {when(v['last_snapshot']['time'], seconds=False)}",
            str(v["snapshots"]),
        )
    out.print(f"{answer['path']}: {len(answer['versions'])} version(s)")
    out.print(t)
    notes = [f"{answer['snapshots_scanned']} snapshots"]
    if answer["snapshots_without_path"]:
        notes.append(f"{answer['snapshots_without_path']} without it")
    if answer["not_indexed"]:
        notes.append(f"{answer['not_indexed']} not indexed (or without content ids)")
    out.print(", ".join(notes))
    if any(not v["exact"] for v in answer["versions"]):
        out.print("~: grouped by size and mtime (indexed before content ids)")
    if answer["versions"]:
        last = answer["versions"][-1]["last_snapshot"]["short_id"]
        out.print(f"get one: podbackup download {pod} {last} {answer['path']}")


def register(app: typer.Typer, panel: str) -> None:
    app.command("diff", rich_help_panel=panel, epilog=EXIT_CODES)(diff)
    app.command("history", rich_help_panel=panel, epilog=EXIT_CODES)(history)
