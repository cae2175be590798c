"""The CLI shows what the API returns as text, never as terminal commands or markup, and
says which snapshot a restore of `latest` is about to use (see conftest.py: a live API and
worker)."""

from __future__ import annotations

import asyncio
import json

import asyncpg

from tests.cli.conftest import Live


def test_names_saved_before_the_check_are_printed_escaped(live: Live) -> None:
    evil = "wiki\x1b[2J\x1b]0;owned\x07 [red]\u202eexe.txt[/]"

    async def rename() -> None:
        conn = await asyncpg.connect(live.settings.sync_database_url)
        try:
            await conn.execute("UPDATE pods SET name = $1 WHERE id = $2", evil, live.pod["id"])
        finally:
            await conn.close()

    asyncio.run(rename())
    try:
        r = live.cli("pods", "list")
        assert r.returncode == 0, r.stderr
        assert "\x1b" not in r.stdout
        assert "\x07" not in r.stdout
        assert "\u202e" not in r.stdout
        assert "wiki\\x1b[2J\\x1b]0;owned\\x07 [red]\\u202eexe.txt[/]" in r.stdout
        r = live.cli("status", live.pod["id"])
        assert r.returncode == 0, r.stderr
        assert "\x1b" not in r.stdout
        assert "wiki\\x1b[2J" in r.stdout
    finally:
        asyncio.run(_restore_name(live))


async def _restore_name(live: Live) -> None:
    conn = await asyncpg.connect(live.settings.sync_database_url)
    try:
        await conn.execute("UPDATE pods SET name = 'wiki' WHERE id = $1", live.pod["id"])
    finally:
        await conn.close()


def test_restore_latest_says_which_backup_and_never_takes_a_safety_snapshot(live: Live) -> None:
    r = live.cli("backup", "wiki", "--wait", "--json")
    assert r.returncode == 0, r.stdout + r.stderr
    made = json.loads(r.stdout)["result"]["snapshot_id"]
    for _ in range(2):
        r = live.cli("restore", "wiki", "latest", "--wait")
        assert r.returncode == 0, r.stdout + r.stderr
        assert f"restoring snapshot {made[:8]} (backup (manual), " in r.stdout
    snaps = json.loads(live.cli("snapshots", "wiki", "--json").stdout)
    assert [s["kind"] for s in snaps[:3]] == ["safety", "safety", "backup"]
    r = live.cli("snapshots", "wiki")
    assert r.returncode == 0, r.stderr
    rows = {line.split()[0]: line for line in r.stdout.splitlines() if line.strip()}
    assert " safety " in rows[snaps[0]["short_id"]]
    assert " backup " in rows[made[:8]]
    assert "restored only by id" in r.stdout
    r = live.cli("status", "wiki")
    assert "(safety, taken by a restore" in r.stdout

    # By id, a safety snapshot is restored, and named as what it is.
    # --wait: the next test backs up the same pod, which a running restore keeps busy.
    r = live.cli("restore", "wiki", snaps[0]["short_id"], "--no-safety-backup", "--json", "--wait")
    assert r.returncode == 0, r.stdout + r.stderr
    assert "safety (the pod before a restore)" in r.stderr
    assert json.loads(r.stdout)["status"] == "succeeded"


def test_file_names_from_a_snapshot_are_printed_escaped(live: Live) -> None:
    (live.root / "pod" / "evil\x1b[2J\u202e.txt").write_text("a name the tenant chose\n")
    try:
        r = live.cli("backup", "wiki", "--wait")
        assert r.returncode == 0, r.stdout + r.stderr
        r = live.cli("files", "wiki", "latest", "/files")
        assert r.returncode == 0, r.stdout + r.stderr
        assert "\x1b" not in r.stdout
        assert "\u202e" not in r.stdout
        assert "evil\\x1b[2J\\u202e.txt" in r.stdout
    finally:
        (live.root / "pod" / "evil\x1b[2J\u202e.txt").unlink()
