"""MariaDB dumps against the real local server, with a throwaway user and password."""

from __future__ import annotations

import asyncio
import json
import re
import subprocess
from dataclasses import replace
from pathlib import Path

import pytest

from app.integrations.dumps import (
    DbEndpoint,
    DumpError,
    dump,
    load,
    read_manifest,
    table_counts,
    trial_restore,
)
from app.integrations.dumps.mysql import STRIP_DEFINER
from app.kit.netpolicy import Policy
from tests.fixtures.databases import (
    MYSQL_HOST,
    MYSQL_PORT,
    MYSQL_URL,
    find_processes,
    mysql_admin,
    mysql_database_exists,
    wait_gone,
)

TEXTS = [
    "it's",
    'double "quotes"',
    "back\\slash \\' \\\\",
    "new\nline\r\nand tab\there",
    "'),(';--",
    "INSERT INTO `people` VALUES (1);",
    "-- Dump completed",
    "ünïcödé ✓ 🎉 中文",
    "",
]
SCHEMA = """
CREATE TABLE people (
  id INT AUTO_INCREMENT PRIMARY KEY, name TEXT, data LONGBLOB, price DECIMAL(24,6),
  doc JSON, born DATE
) DEFAULT CHARSET=utf8mb4;
CREATE TABLE orders (
  id BIGINT AUTO_INCREMENT PRIMARY KEY, person_id INT, qty INT, pad VARCHAR(1000),
  FOREIGN KEY (person_id) REFERENCES people(id)
);
CREATE TABLE empty_one (id INT);
CREATE TABLE `odd``name` (v TEXT);
CREATE VIEW people_names AS SELECT name FROM people;
CREATE TRIGGER orders_touch BEFORE INSERT ON orders FOR EACH ROW
  SET NEW.qty = COALESCE(NEW.qty, 0);
CREATE PROCEDURE add_order(p INT) INSERT INTO orders (person_id, qty) VALUES (p, 1);
CREATE EVENT nightly ON SCHEDULE EVERY 1 DAY DO DELETE FROM empty_one;
"""
SNAPSHOT = {
    "people": "SELECT id, HEX(name), HEX(data), price, doc, born FROM people ORDER BY id",
    "orders": "SELECT id, person_id, qty, pad FROM orders ORDER BY id",
    "empty_one": "SELECT * FROM empty_one ORDER BY 1",
    "odd`name": "SELECT HEX(v) FROM `odd``name` ORDER BY 1",
}


def text_literal(text: str) -> str:
    return f"CONVERT(X'{text.encode().hex()}' USING utf8mb4)" if text else "''"


def populate(ep: DbEndpoint, bulk: int = 3000) -> None:
    rows = []
    for i, text in enumerate(TEXTS):
        blob = "NULL" if i % 3 == 1 else f"X'{bytes(range(256)).hex()}'"
        price = "12345678901234567.123456" if i % 2 else "NULL"
        doc = text_literal(json.dumps({"t": text, "n": [1, 2.5, None]}))
        born = f"'2000-01-{i + 1:02d}'" if i % 4 == 0 else "NULL"
        rows.append(f"({text_literal(text)}, {blob}, {price}, {doc}, {born})")
    rows.append("(NULL, NULL, NULL, NULL, NULL)")
    mysql_admin(
        SCHEMA
        + "INSERT INTO people (name, data, price, doc, born) VALUES "
        + ",\n".join(rows)
        + ";\nSET SESSION max_recursive_iterations = 1000000;\n"
        "INSERT INTO orders (person_id, qty, pad) "
        f"WITH RECURSIVE seq(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM seq WHERE n < {bulk}) "
        "SELECT 1 + n % 10, n, REPEAT('(x'';\\\\', 150) FROM seq;\n"
        "INSERT INTO `odd``name` VALUES ('x'), ('y\\\\z');\n",
        database=ep.name,
        login=ep,
    )


def snapshot(database: str) -> dict[str, list[str]]:
    return {table: mysql_admin(sql, database=database) for table, sql in SNAPSHOT.items()}


def objects(database: str) -> list[str]:
    return mysql_admin(
        "SELECT CONCAT('trigger ', TRIGGER_NAME) FROM information_schema.TRIGGERS "
        f"WHERE TRIGGER_SCHEMA = '{database}' UNION ALL "
        "SELECT CONCAT('routine ', ROUTINE_NAME) FROM information_schema.ROUTINES "
        f"WHERE ROUTINE_SCHEMA = '{database}' UNION ALL "
        "SELECT CONCAT('event ', EVENT_NAME) FROM information_schema.EVENTS "
        f"WHERE EVENT_SCHEMA = '{database}' UNION ALL "
        "SELECT CONCAT('view ', TABLE_NAME) FROM information_schema.VIEWS "
        f"WHERE TABLE_SCHEMA = '{database}' ORDER BY 1;"
    )


async def test_round_trip_into_an_empty_and_into_the_changed_database(
    mysql_pod: DbEndpoint, policy: Policy, tmp_path: Path, argv_log: Path
) -> None:
    populate(mysql_pod)
    before, kinds = snapshot(mysql_pod.name), objects(mysql_pod.name)
    assert kinds == [
        "event nightly", "routine add_order", "trigger orders_touch", "view people_names"
    ]  # fmt: skip
    counts = await table_counts(mysql_pod, policy)
    assert counts == {"people": len(TEXTS) + 1, "orders": 3000, "empty_one": 0, "odd`name": 2}
    progress: list[int] = []

    result = await dump(mysql_pod, policy, tmp_path / "db.sql", on_progress=progress.append)

    assert result.tables == counts
    data = result.path.read_bytes()
    assert data.count(b"INSERT INTO `orders` VALUES") > 1  # several statements were counted
    assert b"CREATE DATABASE" not in data
    assert b"\nUSE " not in data
    assert progress[-1] == result.bytes == len(data)
    assert "mariadb-dump" in result.client or "mysqldump" in result.client
    assert "MariaDB" in result.server_version

    # (a) into a database that does not exist yet
    copy = replace(mysql_pod, name=f"{mysql_pod.username}_copy")
    loaded = await load(copy, policy, result.path)
    assert loaded.tables == counts
    assert snapshot(copy.name) == before
    assert objects(copy.name) == kinds

    # (b) into the original after changes, a dropped table and a new one
    mysql_admin(
        "DELETE FROM orders WHERE id % 2 = 0; UPDATE people SET name = 'changed';"
        "DROP TABLE empty_one; CREATE TABLE newcomer (x INT); DROP VIEW people_names;",
        database=mysql_pod.name,
    )
    reloaded = await load(mysql_pod, policy, result.path, replace=True)
    assert reloaded.tables == counts  # "newcomer" is gone too
    assert snapshot(mysql_pod.name) == before
    assert objects(mysql_pod.name) == kinds

    log = argv_log.read_text()
    assert "mariadb-dump" in log or "mysqldump" in log
    assert mysql_pod.password
    assert mysql_pod.password not in log
    assert json.dumps(mysql_pod.password)[1:-1] not in log
    # the option files holding the password are gone
    option_files = re.findall(r"--defaults-file=([^\"]+)", log)
    assert option_files
    assert not any(Path(p).exists() for p in option_files)


async def test_wrong_password(mysql_pod: DbEndpoint, policy: Policy, tmp_path: Path) -> None:
    wrong = replace(mysql_pod, password=f"{mysql_pod.password}-not")
    with pytest.raises(DumpError) as info:
        await dump(wrong, policy, tmp_path / "db.sql")
    assert info.value.code == "auth_failed"
    assert wrong.password
    assert wrong.password not in str(info.value)
    assert not (tmp_path / "db.sql").exists()
    with pytest.raises(DumpError) as info:
        await dump(replace(mysql_pod, password=None), policy, tmp_path / "db.sql")
    assert info.value.code == "auth_failed"


async def test_missing_database(mysql_pod: DbEndpoint, policy: Policy, tmp_path: Path) -> None:
    with pytest.raises(DumpError) as info:
        await dump(replace(mysql_pod, name=f"{mysql_pod.name}_nope"), policy, tmp_path / "x.sql")
    assert info.value.code == "database_not_found"


async def test_trial_restore_passes_a_good_dump_and_fails_a_truncated_one(
    mysql_pod: DbEndpoint, policy: Policy, tmp_path: Path, argv_log: Path
) -> None:
    populate(mysql_pod, bulk=2000)
    result = await dump(mysql_pod, policy, tmp_path / "db.sql")

    drill = await trial_restore(result.path, "mariadb", MYSQL_URL, expected=result.tables)
    assert drill.ok, drill.problems
    assert drill.tables["orders"] == {"expected": 2000, "restored": 2000, "ok": True}
    scratch = re.findall(r"--database=(podbackup_drill_[0-9a-f]+)", argv_log.read_text())
    assert scratch
    assert not mysql_database_exists(scratch[0])

    drill = await trial_restore(result.path, "mariadb", MYSQL_URL, expected={"orders": 2000})
    assert not drill.ok
    assert "table people: restored but not recorded in the dump" in drill.problems

    data = result.path.read_bytes()
    cut = tmp_path / "cut.sql"
    cut.write_bytes(data[: len(data) * 2 // 3])
    assert not read_manifest(cut).complete
    drill = await trial_restore(cut, "mariadb", MYSQL_URL)
    assert not drill.ok
    assert drill.problems


async def test_cancel_kills_the_dump(mysql_pod: DbEndpoint, policy: Policy, tmp_path: Path) -> None:
    populate(mysql_pod, bulk=10)
    # another session holds a write lock: the dump waits for it
    locker = subprocess.Popen(
        ["mariadb", "--no-defaults", f"--host={MYSQL_HOST}", f"--port={MYSQL_PORT}",
         "--protocol=TCP", "--user=root", f"--database={mysql_pod.name}", "--batch",
         "--skip-column-names", "--unbuffered"],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert locker.stdin
        assert locker.stdout
        locker.stdin.write("LOCK TABLES orders WRITE; SELECT 'locked';\n")
        locker.stdin.flush()
        assert locker.stdout.readline().strip() == "locked"
        cancel = asyncio.Event()
        task = asyncio.create_task(dump(mysql_pod, policy, tmp_path / "db.sql", cancel=cancel))
        pattern = f"-- {mysql_pod.name}"
        for _ in range(200):
            if find_processes(pattern):
                break
            await asyncio.sleep(0.05)
        else:
            pytest.fail("mariadb-dump did not start")
        await asyncio.sleep(0.3)
        assert not task.done()
        cancel.set()
        with pytest.raises(DumpError) as info:
            await task
        assert info.value.code == "canceled"
        assert wait_gone(pattern) == []
        assert not (tmp_path / "db.sql").exists()
    finally:
        locker.kill()
        locker.wait()


async def test_dump_loads_with_the_plain_client_into_an_empty_database(
    mysql_pod: DbEndpoint, policy: Policy, tmp_path: Path
) -> None:
    # what an owner does with an export: mariadb <new database> < database/<name>.sql
    populate(mysql_pod, bulk=50)
    result = await dump(mysql_pod, policy, tmp_path / "db.sql")
    empty = f"{mysql_pod.username}_export"
    mysql_admin(f"CREATE DATABASE `{empty}`;")
    mysql_admin(result.path.read_text(), database=empty, login=mysql_pod)
    assert snapshot(empty) == snapshot(mysql_pod.name)


async def test_objects_another_account_defined_load_as_the_pods_login(
    mysql_pod: DbEndpoint, policy: Policy, tmp_path: Path
) -> None:
    """A view, a trigger and an event created by root carry DEFINER=root; the pod's login
    (no SUPER) loads them anyway, as their definer, and the rows are untouched — including
    a value that spells a DEFINER clause. (A routine root defined cannot be dumped by the
    pod's login at all: SHOW CREATE FUNCTION needs its definer or mysql.proc access.)"""
    populate(mysql_pod, bulk=10)
    spelled = "DEFINER=`root`@`localhost` in data"
    mysql_admin(
        f"INSERT INTO empty_one VALUES (1); INSERT INTO `odd``name` VALUES ('{spelled}');"
        "CREATE VIEW root_view AS SELECT id FROM orders;"
        "CREATE TRIGGER root_trigger BEFORE UPDATE ON empty_one FOR EACH ROW SET NEW.id = 2;"
        "CREATE EVENT root_event ON SCHEDULE EVERY 1 DAY DO DELETE FROM empty_one;",
        database=mysql_pod.name,
    )  # as root
    before, kinds = snapshot(mysql_pod.name), objects(mysql_pod.name)
    result = await dump(mysql_pod, policy, tmp_path / "db.sql")
    assert b"DEFINER=`root`" in result.path.read_bytes()

    copy = replace(mysql_pod, name=f"{mysql_pod.username}_owned")
    await load(copy, policy, result.path)
    assert snapshot(copy.name) == before
    assert objects(copy.name) == kinds
    assert spelled in mysql_admin("SELECT v FROM `odd``name`", database=copy.name)
    definers = mysql_admin(
        "SELECT DISTINCT DEFINER FROM information_schema.VIEWS "
        f"WHERE TABLE_SCHEMA = '{copy.name}' UNION "
        "SELECT DISTINCT DEFINER FROM information_schema.ROUTINES "
        f"WHERE ROUTINE_SCHEMA = '{copy.name}' UNION "
        "SELECT DISTINCT DEFINER FROM information_schema.TRIGGERS "
        f"WHERE TRIGGER_SCHEMA = '{copy.name}' UNION "
        "SELECT DISTINCT DEFINER FROM information_schema.EVENTS "
        f"WHERE EVENT_SCHEMA = '{copy.name}'"
    )
    assert [d.split("@")[0] for d in definers] == [mysql_pod.username]
    assert mysql_admin("SELECT COUNT(*) FROM root_view", database=copy.name) == ["10"]

    # By hand, as the restore kit and the README say: the same sed, then the plain client.
    by_hand = f"{mysql_pod.username}_by_hand"
    mysql_admin(f"CREATE DATABASE `{by_hand}`")
    edited = subprocess.run(
        ["sed", "-E", STRIP_DEFINER, str(result.path)], capture_output=True, text=True, check=True
    ).stdout
    with pytest.raises(RuntimeError, match="SUPER"):
        mysql_admin(result.path.read_text(), database=by_hand, login=mysql_pod)
    mysql_admin(edited, database=by_hand, login=mysql_pod)
    assert snapshot(by_hand) == before
    assert objects(by_hand) == kinds
