"""`init --copy-chunker-params` and `copy` with the source's password by environment (never
argv): the copy shares the source's chunker polynomial, receives only the snapshots it
lacks, and keeps their tree and time under new ids. Runs with the restic first on PATH
(0.18 and the system 0.14 both)."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

from app.integrations.restic import Repository, Restic


def _backup(repo: Repository, folder: Path) -> None:
    env = {**os.environ, **repo.child_env()}
    subprocess.run(["restic", "backup", str(folder)], env=env, check=True, capture_output=True)


async def test_copy_shares_chunker_params_and_copies_only_new_snapshots(tmp_path: Path) -> None:
    restic = await Restic.detect("restic", lock_wait_seconds=0)
    source = Repository(url=str(tmp_path / "primary"), password="primary password")
    copy = Repository(url=str(tmp_path / "copy"), password="copy password")
    data = tmp_path / "data"
    data.mkdir()
    (data / "a.bin").write_bytes(os.urandom(300_000))
    await restic.init(source)
    _backup(source, data)

    copy_id = await restic.init(copy, source)
    assert copy_id == await restic.repository_id(copy)
    assert (await restic.cat_config(copy))["chunker_polynomial"] == (
        await restic.cat_config(source)
    )["chunker_polynomial"]
    # Without the chunker parameters another polynomial is drawn: the check above can fail.
    other = Repository(url=str(tmp_path / "other"), password="x")
    await restic.init(other)
    assert (await restic.cat_config(other))["chunker_polynomial"] != (
        await restic.cat_config(source)
    )["chunker_polynomial"]

    await restic.copy(copy, source)
    (data / "b.txt").write_text("second")
    _backup(source, data)
    await restic.copy(copy, source)
    await restic.copy(copy, source)  # nothing new: nothing copied twice
    originals = await restic.snapshots(source)
    copies = await restic.snapshots(copy)
    assert len(copies) == 2
    assert {s["id"] for s in copies}.isdisjoint({s["id"] for s in originals})
    assert {(s["tree"], s["time"]) for s in copies} == {(s["tree"], s["time"]) for s in originals}
    assert {s.get("original") for s in copies} == {s["id"] for s in originals}
