"""`podbackup diff` and `podbackup history` against a live API and worker."""

from __future__ import annotations

import json
import os
import time

from tests.cli.conftest import Live


def _backup_indexed(live: Live, pod: str) -> str:
    r = live.cli("backup", pod, "--wait")
    assert r.returncode == 0, r.stdout + r.stderr
    snap = json.loads(live.cli("snapshots", pod, "--json").stdout)[0]["id"]
    for _ in range(300):
        shown = json.loads(live.cli("snapshot", pod, snap, "--json").stdout)
        if shown["index_status"] == "ready":
            return str(snap)
        time.sleep(0.2)
    raise AssertionError(f"snapshot {snap} not indexed")


def test_diff_and_history(live: Live) -> None:
    files = live.root / "hist-pod"
    (files / "docs").mkdir(parents=True)
    (files / "docs" / "a.txt").write_text("first\n")
    (files / "old.txt").write_text("old\n")
    live.local_pod("hist", files, live.root / "hist-repo")
    s1 = _backup_indexed(live, "hist")
    (files / "docs" / "a.txt").write_text("twice\n")  # the same size
    os.utime(files / "docs" / "a.txt", (1_800_000_000, 1_800_000_000))
    (files / "old.txt").unlink()
    (files / "new.txt").write_text("new\n")
    s2 = _backup_indexed(live, "hist")

    r = live.cli("diff", "hist")
    assert r.returncode == 0, r.stdout + r.stderr
    assert s1[:8] in r.stdout
    assert s2[:8] in r.stdout
    assert "from the index" in r.stdout
    rows = [ln.replace("│", " ").split() for ln in r.stdout.splitlines() if "/files/" in ln]
    lines = {row[1]: row[0] for row in rows}
    assert lines == {
        "/files/docs/a.txt": "modified",
        "/files/new.txt": "added",
        "/files/old.txt": "removed",
    }
    r = live.cli("diff", "hist", s2[:8], "--against", s1[:8], "--change", "added", "--json")
    assert r.returncode == 0, r.stderr
    answer = json.loads(r.stdout)
    assert [i["path"] for i in answer["items"]] == ["/files/new.txt"]
    assert answer["totals"]["removed"]["files"] == 1

    r = live.cli("history", "hist", "/files/docs/a.txt")
    assert r.returncode == 0, r.stdout + r.stderr
    assert "2 version(s)" in r.stdout
    r = live.cli("history", "hist", "files/docs/a.txt", "--json")
    versions = json.loads(r.stdout)["versions"]
    assert [v["last_snapshot"]["id"] for v in versions] == [s2, s1]

    r = live.cli("diff", "hist", s1[:8])
    assert r.returncode == 2
    assert "against=" in r.stderr  # the hint: the first snapshot has nothing before it
    r = live.cli("history", "hist", "/files/nope.txt")
    assert r.returncode == 2
    assert "nope.txt" in r.stderr
