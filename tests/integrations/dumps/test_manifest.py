"""The streaming dump reader: counts, footers and chunk boundaries (no servers needed)."""

from __future__ import annotations

from pathlib import Path

import pytest

from app.integrations.dumps import read_manifest
from app.integrations.dumps.manifest import MysqlScanner, PgScanner

PG_DUMP = b"""--
-- PostgreSQL database dump
--

\\restrict abc
SET client_encoding = 'UTF8';
CREATE TABLE public.t (id integer, s text);
CREATE FUNCTION public.f() RETURNS void AS $$
BEGIN
  PERFORM 1;
END $$ LANGUAGE plpgsql;

COPY "Odd Schema"."we""ird" (a) FROM stdin;
x\\ny\\\\z
\\N
\\\\.
a\\n\\\\.\\nb
\\.

COPY public.e  FROM stdin;
\\.

COPY public.empty (id) FROM stdin;
\\.

COPY public.t (id, s) FROM stdin;
1\tone
2\t\\.x
3\t
\\.

--
-- PostgreSQL database dump complete
--

\\unrestrict abc
"""
PG_COUNTS = {'Odd Schema.we"ird': 4, "public.e": 0, "public.empty": 0, "public.t": 3}

MY_DUMP = b"""/*M!999999\\- enable the sandbox mode */
-- MariaDB dump 10.19  Distrib 10.11.19-MariaDB, for debian-linux-gnu (x86_64)
/*!40101 SET NAMES utf8mb4 */;
DROP TABLE IF EXISTS `e`;
CREATE TABLE `e` (
  `x` int(11) DEFAULT NULL
) ENGINE=InnoDB;
DELIMITER ;;
/*!50003 CREATE*/ /*!50003 TRIGGER trg BEFORE INSERT ON e FOR EACH ROW
INSERT INTO `log` VALUES (1),(2) */;;
DELIMITER ;
CREATE TABLE `we``ird` (
  `id` int(11) NOT NULL,
  `a` text
) ENGINE=InnoDB;
LOCK TABLES `we``ird` WRITE;
INSERT INTO `we``ird` VALUES
(1,'it\\'s a \\\\ b\\nc (),(;'),
(2,NULL),
(3,'\\\\'),(4,'a''b(c'),(5,0x00FF28);
INSERT INTO `we``ird` VALUES (6,'(((;'),(7,'\\'\\'')
;
UNLOCK TABLES;
/*!50001 CREATE TABLE `v` (
  `one` tinyint NOT NULL
) */;
DELIMITER ;;
CREATE DEFINER=`root`@`%` PROCEDURE `p`()
INSERT INTO `e` VALUES (1),(2),(3)
;;
DELIMITER ;

-- Dump completed on 2026-01-01  6:53:13
"""
MY_COUNTS = {"e": 0, "we`ird": 7}


def scan(data: bytes, scanner: PgScanner | MysqlScanner, size: int) -> PgScanner | MysqlScanner:
    for start in range(0, len(data), size):
        scanner.feed(data[start : start + size])
    return scanner


@pytest.mark.parametrize("size", [1, 2, 3, 4, 5, 7, 13, 64, 1 << 20])
def test_pg_counts_hold_at_every_chunk_size(size: int) -> None:
    scanner = scan(PG_DUMP, PgScanner(), size)
    assert scanner.tables == PG_COUNTS
    assert scanner.complete


@pytest.mark.parametrize("size", [1, 2, 3, 4, 5, 7, 13, 64, 1 << 20])
def test_mysql_counts_hold_at_every_chunk_size(size: int) -> None:
    scanner = scan(MY_DUMP, MysqlScanner(), size)
    assert scanner.tables == MY_COUNTS
    assert scanner.complete


def test_read_manifest_detects_the_kind(tmp_path: Path) -> None:
    pg, my, other = tmp_path / "pg.sql", tmp_path / "my.sql", tmp_path / "x.sql"
    pg.write_bytes(PG_DUMP)
    my.write_bytes(MY_DUMP)
    other.write_bytes(b"SELECT 1;\n")
    assert read_manifest(pg).kind == "postgres"
    assert read_manifest(pg).tables == PG_COUNTS
    assert read_manifest(my).kind == "mysql"
    assert read_manifest(my).tables == MY_COUNTS
    unknown = read_manifest(other)
    assert (unknown.kind, unknown.complete) == ("unknown", False)
    assert read_manifest(pg).bytes == len(PG_DUMP)


@pytest.mark.parametrize(
    "cut",
    [
        b"2\t\\.x\n",  # inside the last COPY block
        b"COPY public.t (id, s) FROM stdin;\n",
        b"-- PostgreSQL database dump complete",  # before the footer
    ],
)
def test_pg_truncated_is_incomplete(tmp_path: Path, cut: bytes) -> None:
    path = tmp_path / "cut.sql"
    path.write_bytes(PG_DUMP[: PG_DUMP.index(cut) + len(cut) - 1])
    manifest = read_manifest(path)
    assert not manifest.complete
    assert manifest.problem


def test_pg_footer_inside_copy_data_is_not_completion(tmp_path: Path) -> None:
    # a row whose text is the footer line, then the file ends: still inside COPY
    data = PG_DUMP[: PG_DUMP.index(b"1\tone")] + b"-- PostgreSQL database dump complete\n"
    path = tmp_path / "odd.sql"
    path.write_bytes(data)
    manifest = read_manifest(path)
    assert not manifest.complete
    assert manifest.tables["public.t"] == 1


@pytest.mark.parametrize("cut", [b"(2,NULL)", b"'\\\\'", b"-- Dump completed"])
def test_mysql_truncated_is_incomplete(tmp_path: Path, cut: bytes) -> None:
    path = tmp_path / "cut.sql"
    path.write_bytes(MY_DUMP[: MY_DUMP.index(cut) + len(cut) - 1])
    assert not read_manifest(path).complete


def test_mysql_single_line_extended_insert_longer_than_a_chunk() -> None:
    rows = b",".join(b"(%d,'%s')" % (i, b"x)(;" * 50) for i in range(20000))
    data = (
        b"-- MySQL dump 10.13\nCREATE TABLE `big` (\n  `id` int\n);\n"
        b"INSERT INTO `big` VALUES " + rows + b";\n-- Dump completed\n"
    )
    scanner = scan(data, MysqlScanner(), 1 << 20)
    assert len(data) > 3 << 20
    assert scanner.tables == {"big": 20000}
    assert scanner.complete


def test_empty_file_is_not_a_dump(tmp_path: Path) -> None:
    path = tmp_path / "empty.sql"
    path.write_bytes(b"")
    manifest = read_manifest(path)
    assert not manifest.complete
    assert manifest.bytes == 0


@pytest.mark.parametrize(
    ("dump", "footer"),
    [(PG_DUMP, b"-- PostgreSQL database dump complete\n"), (MY_DUMP, b"-- Dump completed\n")],
)
def test_a_footer_followed_by_more_sql_is_not_the_end(
    tmp_path: Path, dump: bytes, footer: bytes
) -> None:
    # e.g. a function body quoting the footer line, and the file cut right after it
    head = dump[: dump.index(b"CREATE TABLE")]
    path = tmp_path / "odd.sql"
    path.write_bytes(head + footer + b"CREATE TABLE x (a int);\n")
    assert not read_manifest(path).complete
    path.write_bytes(head + footer + b"--\n\n")
    assert read_manifest(path).complete
