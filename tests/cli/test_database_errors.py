"""Only `scan` and `run` create an index; an unusable database is one line and the right code.

A mistyped path must not become a new, empty index that reports "0 files"; a database that
cannot be reached is exit 3 (worth retrying), a missing index or a bad URL exit 2 (fix the
command), and every database error says where the URL came from without its password.
"""

from __future__ import annotations

import os
import stat

import psycopg2
import pytest

from tests.conftest import Env, new_pg_schema_url, without_dac_override

READ_COMMANDS = [
    ["status"], ["files"], ["tag", "ls"], ["dupes"], ["reconcile"], ["verify"], ["prune"],
    ["insight", "show", "/nowhere/a.jpg"],
]


def one_line(stderr: str) -> str:
    lines = stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in stderr, stderr
    return lines[0]


@pytest.mark.parametrize("command", READ_COMMANDS, ids=lambda c: " ".join(c))
def test_a_mistyped_sqlite_path_creates_nothing(sqlite_env, command):
    missing_dir = sqlite_env.tmp_path / "typo" / "deeper"
    sqlite_env.db_url = f"sqlite:///{missing_dir}/index.db"
    sqlite_env.library("photos", {"a.jpg": "x"})
    line = one_line(sqlite_env.cli(*command, check=2).stderr)
    assert line == (f"assetd: no index at {missing_dir}/index.db: "
                    "run `assetd scan` or `assetd run` first")
    assert not (sqlite_env.tmp_path / "typo").exists()


def test_an_existing_directory_gets_no_file(sqlite_env):
    sqlite_env.library("photos", {"a.jpg": "x"})
    sqlite_env.cli("status", check=2)
    assert not (sqlite_env.tmp_path / "index.db").exists()
    sqlite_env.cli("scan")  # scan creates it; then status reads it
    assert sqlite_env.json("status")["libraries"][0]["files"] == 1


def test_a_postgresql_database_without_the_schema_is_left_empty(tmp_path, pg_database):
    url = new_pg_schema_url(pg_database)
    env = Env(tmp_path, url)
    env.library("photos", {"a.jpg": "x"})
    line = one_line(env.cli("files", check=2).stderr)
    assert line.startswith("assetd: no index at postgresql://") and "assetd scan" in line
    schema = url.rsplit("%3D", 1)[1]
    with psycopg2.connect(pg_database) as conn, conn.cursor() as cur:
        cur.execute("SELECT count(*) FROM information_schema.tables WHERE table_schema = %s",
                    (schema,))
        assert cur.fetchone()[0] == 0


UNREACHABLE = "postgresql://assetd:secretpw@127.0.0.1:1/index"


@pytest.mark.parametrize("command", [["status"], ["scan"], ["config", "check"]],
                         ids=lambda c: " ".join(c))
def test_an_unreachable_database_is_exit_3_naming_the_config_key(sqlite_env, command):
    sqlite_env.db_url = UNREACHABLE
    sqlite_env.library("photos", {"a.jpg": "x"})
    line = one_line(sqlite_env.cli(*command, check=3).stderr)
    assert f"database error (daemon.database in {sqlite_env.config_path})" in line
    assert "secretpw" not in line


def test_an_unreachable_db_flag_is_named_as_such(sqlite_env):
    sqlite_env.library("photos", {"a.jpg": "x"})
    line = one_line(sqlite_env.cli("--db", UNREACHABLE, "status", check=3).stderr)
    assert line.startswith("assetd: database error (--db): ") and "secretpw" not in line


def test_config_check_reports_a_database_it_could_not_create(sqlite_env):
    locked = sqlite_env.tmp_path / "locked"
    locked.mkdir(mode=0o500)
    sqlite_env.db_url = f"sqlite:///{locked}/sub/index.db"
    sqlite_env.library("photos")
    proc = sqlite_env.cli("config", "check", check=2, wrapper=without_dac_override())
    line = one_line(proc.stderr)
    assert line == (f"assetd: daemon.database in {sqlite_env.config_path}: cannot create "
                    f"{locked}/sub/index.db: {locked} is not writable")


def test_config_check_reports_a_missing_postgresql_database(sqlite_env):
    sqlite_env.db_url = "postgresql://postgres@127.0.0.1:5432/assetd_no_such_database"
    sqlite_env.library("photos")
    line = one_line(sqlite_env.cli("config", "check", check=3).stderr)
    assert "assetd_no_such_database" in line and "does not exist" in line


def test_config_check_describes_the_index(sqlite_env):
    sqlite_env.library("photos", {"a.jpg": "x"})
    before = sqlite_env.cli("config", "check").stdout
    assert f"database: no index yet at {sqlite_env.tmp_path}/index.db" in before
    assert not (sqlite_env.tmp_path / "index.db").exists()
    sqlite_env.cli("scan")
    after = sqlite_env.cli("config", "check").stdout
    assert f"database: index at {sqlite_env.tmp_path}/index.db (schema version" in after


def test_config_check_reports_a_missing_enricher_executable(sqlite_env):
    sqlite_env.library("photos")
    sqlite_env.enrichers.append({"name": "probe", "match": ["*.mp4"],
                                 "command": ["assetd-no-such-tool", "{path}"]})
    sqlite_env.enrichers.append({"name": "ok", "match": ["*.txt"],
                                 "command": ["cat", "{path}"]})
    sqlite_env.write_config()
    line = one_line(sqlite_env.cli("config", "check", check=2).stderr)
    assert line == (f"assetd: {sqlite_env.config_path}: enricher 'probe': command: "
                    "executable 'assetd-no-such-tool' not found on PATH")


def test_the_state_directory_and_database_are_private(sqlite_env):
    state = sqlite_env.tmp_path / "state" / "assetd"
    sqlite_env.db_url = f"sqlite:///{state}/index.db"
    sqlite_env.library("photos", {"a.jpg": "x"})
    sqlite_env.cli("scan")
    assert stat.S_IMODE(os.stat(state).st_mode) == 0o700
    for name in ("index.db", "index.db-wal"):
        path = state / name
        if path.exists():
            assert stat.S_IMODE(os.stat(path).st_mode) == 0o600, name
    assert stat.S_IMODE(os.stat(state / "index.db-locks").st_mode) == 0o700
