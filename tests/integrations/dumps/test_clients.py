"""Client selection by version, and error classification of real client messages."""

from __future__ import annotations

from pathlib import Path

import pytest

from app.integrations.dumps import DumpError, choose_pg_client, installed_pg_clients
from app.integrations.dumps.clients import parse_pg_major, pg_client
from app.integrations.dumps.errors import classify_mysql, classify_pg
from app.kit import subprocess as sp
from tests.fixtures.databases import PG_SERVER

V = {n: Path(f"/usr/lib/postgresql/{n}/bin/pg_dump") for n in (13, 15, 16, 17)}


@pytest.mark.parametrize(
    ("server", "installed", "on_path", "expected"),
    [
        (15, V, None, V[15]),  # exact match
        (14, V, None, V[15]),  # lowest newer one
        (12, V, None, V[13]),
        (17, V, None, V[17]),
        (16, {13: V[13]}, (16, Path("/usr/bin/pg_dump")), Path("/usr/bin/pg_dump")),
        (16, {13: V[13]}, (17, Path("/opt/pg_dump")), Path("/opt/pg_dump")),
        (11, {}, (15, Path("/usr/bin/pg_dump")), Path("/usr/bin/pg_dump")),
    ],
)
def test_choose_pg_client(
    server: int, installed: dict[int, Path], on_path: tuple[int, Path] | None, expected: Path
) -> None:
    assert choose_pg_client("pg_dump", server, installed, on_path) == expected


def test_older_client_names_the_package_to_install() -> None:
    with pytest.raises(DumpError) as info:
        choose_pg_client("pg_dump", 18, {13: V[13], 15: V[15]}, (16, Path("/usr/bin/pg_dump")))
    assert info.value.code == "client_too_old"
    assert "16" in info.value.message
    assert "18" in info.value.message
    assert "apt-get install postgresql-client-18" in (info.value.hint or "")


def test_no_client_at_all() -> None:
    with pytest.raises(DumpError) as info:
        choose_pg_client("psql", 15, {}, None)
    assert info.value.code == "client_missing"
    assert "postgresql-client-15" in (info.value.hint or "")


def test_installed_clients_from_a_folder_tree(tmp_path: Path) -> None:
    for name in ("13", "16", "9.6", "misc"):
        binary = tmp_path / name / "bin" / "pg_dump"
        binary.parent.mkdir(parents=True)
        binary.write_text("#!/bin/sh\n")
        binary.chmod(0o755)
    (tmp_path / "14" / "bin").mkdir(parents=True)  # no pg_dump in it
    found = installed_pg_clients("pg_dump", tmp_path)
    assert found == {13: tmp_path / "13/bin/pg_dump", 16: tmp_path / "16/bin/pg_dump"}
    assert choose_pg_client("pg_dump", 14, found, None) == tmp_path / "16/bin/pg_dump"


def test_parse_versions() -> None:
    assert parse_pg_major("pg_dump (PostgreSQL) 15.20 (Debian 15.20-0+deb12u1)") == 15
    assert parse_pg_major("psql (PostgreSQL) 17.2") == 17
    assert parse_pg_major("pg_dump (PostgreSQL) 9.6.24") == 9
    assert parse_pg_major("nonsense") is None


async def test_this_machine_picks_its_installed_client() -> None:
    installed = installed_pg_clients("pg_dump")
    assert installed, "no /usr/lib/postgresql/<N>/bin/pg_dump on this machine"
    lowest = min(installed)
    binary, version = await pg_client("pg_dump", lowest)
    assert binary == installed[lowest]
    assert parse_pg_major(version) == lowest
    with pytest.raises(DumpError) as info:
        await pg_client("pg_dump", max(installed) + 1)
    assert info.value.code == "client_too_old"


async def test_a_folder_of_last_resort_serves_a_newer_server(tmp_path: Path) -> None:
    """PODBACKUP_PG_BIN_DIR: used only when no installed client fits, and only when its
    own client is new enough (here a stand-in that reports its version like pg_dump)."""
    newest = max(installed_pg_clients("pg_dump"))
    folder = tmp_path / "bin"
    folder.mkdir()
    fake = folder / "pg_dump"
    fake.write_text(f"#!/bin/sh\necho 'pg_dump (PostgreSQL) {newest + 2}.1'\n")
    fake.chmod(0o755)
    binary, version = await pg_client("pg_dump", newest + 1, last_resort=folder)
    assert (binary, parse_pg_major(version)) == (fake, newest + 2)
    # an installed client that fits still wins
    binary, _ = await pg_client("pg_dump", newest, last_resort=folder)
    assert binary == installed_pg_clients("pg_dump")[newest]
    with pytest.raises(DumpError) as info:  # too old itself: the usual advice
        await pg_client("pg_dump", newest + 3, last_resort=folder)
    assert info.value.code == "client_too_old"


async def test_disk_full_message_from_real_pg_dump() -> None:
    # pg_dump writing to /dev/full fails as it would on a full staging disk
    binary, _ = await pg_client("pg_dump", min(installed_pg_clients("pg_dump")))
    done = await sp.run(
        [str(binary), "--no-password", "--file=/dev/full", f"--dbname={PG_SERVER}/postgres"],
        timeout=60,
    )
    assert done.returncode != 0
    assert classify_pg(done.stderr_tail, "dump_failed").code == "disk_full"


@pytest.mark.parametrize(
    ("stderr", "code"),
    [
        ('mariadb-dump: Got error: 1045: "Access denied for user \'x\'@\'h\'" when trying '
         "to connect", "auth_failed"),
        ("ERROR 1049 (42000): Unknown database 'nope'", "database_not_found"),
        ("ERROR 2002 (HY000): Can't connect to server on '10.0.0.1' (115)", "unreachable"),
        ("mariadb-dump: Got errno 28 on write", "disk_full"),
        ("ERROR 1064 (42000) at line 3: You have an error in your SQL syntax", "load_failed"),
    ],
)  # fmt: skip
def test_classify_mysql(stderr: str, code: str) -> None:
    assert classify_mysql(stderr, "load_failed").code == code


def test_scrub_masks_the_password() -> None:
    error = DumpError("dump_failed", "failed near 'hunter22' in line 1", hint="not hunter22")
    error.scrub("hunter22")
    assert "hunter22" not in str(error)
    assert "hunter22" not in (error.hint or "")
    assert "hunter22" not in repr(error.args)
