"""`podbackup pin`, `unpin` and `before-update` against a live API and worker (see
conftest.py): what a person types, what they read, the exit codes a script checks."""

from __future__ import annotations

import json

from tests.cli.conftest import Live


def test_pin_unpin_and_the_pinned_column(live: Live) -> None:
    r = live.cli("backup", "wiki", "--wait")
    assert r.returncode == 0, r.stdout + r.stderr
    snap = json.loads(live.cli("snapshots", "wiki", "--json").stdout)[0]
    assert snap["pinned"] is False
    r = live.cli("pin", "wiki", snap["short_id"], "--note", "golden copy", "--days", "5")
    assert r.returncode == 0, r.stdout + r.stderr
    assert f"snapshot {snap['short_id']}" in r.stdout
    assert "pinned until" in r.stdout
    assert "golden copy" in r.stdout
    listed = live.cli("snapshots", "wiki")
    assert "PIN" in listed.stdout
    row = next(line for line in listed.stdout.splitlines() if snap["short_id"] in line)
    assert "pinned" in row
    shown = live.cli("snapshot", "wiki", snap["short_id"])
    assert "golden copy" in shown.stdout
    r = live.cli("unpin", "wiki", snap["short_id"], "--json")
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["pinned"] is False
    row = next(
        line
        for line in live.cli("snapshots", "wiki").stdout.splitlines()
        if snap["short_id"] in line
    )
    assert "pinned" not in row
    r = live.cli("pin", "wiki", "0123456789abcdef")
    assert r.returncode == 2, r.stderr
    assert "not found" in r.stderr


def test_before_update_prints_the_rollback_or_exits_1(live: Live) -> None:
    r = live.cli("before-update", "wiki", "--app-version", "1.2.3", "--forever")
    assert r.returncode == 0, r.stdout + r.stderr
    assert "pinned until unpinned: before update to 1.2.3" in r.stdout
    assert "roll back with: podbackup restore" in r.stdout
    answer = json.loads(
        live.cli("before-update", "wiki", "--app-version", "1.2.4", "--json").stdout
    )
    assert "app-version=1.2.4" in answer["snapshot"]["tags"]
    assert answer["rollback"]["body"]["snapshot_id"] == answer["snapshot"]["id"]

    r = live.cli("before-update", "wiki", "--app-version", "1.2 beta")
    assert r.returncode == 2, r.stdout + r.stderr
    assert "app_version" in r.stderr
    assert "hint:" in r.stderr

    (live.root / "pins-broken-pod").mkdir()
    (live.root / "pins-broken-pod" / "a.txt").write_text("a\n")
    (live.root / "pins-not-a-folder").write_text("a file where the repository should be\n")
    live.local_pod("pins-broken", live.root / "pins-broken-pod", live.root / "pins-not-a-folder")
    r = live.cli("before-update", "pins-broken", "--app-version", "1.0")
    assert r.returncode == 1, r.stdout + r.stderr
    assert "target_unusable" in r.stderr
    assert "do not update the app" in r.stderr
    assert "Traceback" not in r.stderr
