"""The store on both backends: migrations, URLs, raw bytes paths, concurrent writers."""

from __future__ import annotations

import subprocess
import sys
import threading
import time

from daemon.scan.walk import to_signed64
from daemon.store import Store, changes, redact_url, sqlite_path
from daemon.store.db import SQLITE_CACHE_KIB
from daemon.store.migrations import SCHEMA_VERSION, current_version
from daemon.store.models import File, Library, SchemaVersion
from tests.conftest import REPO_ROOT, cli_env, new_pg_schema_url, write_tree


def test_sqlite_url_forms():
    assert sqlite_path("sqlite:////var/lib/assetd/index.db") == "/var/lib/assetd/index.db"
    assert sqlite_path("postgresql://u@h/db") is None
    assert sqlite_path("sqlite:///rel.db").endswith("/rel.db")


def test_redact_url():
    assert redact_url("postgresql://u:secret@h:5432/db") == "postgresql://u:***@h:5432/db"
    assert redact_url("postgresql://u@h/db") == "postgresql://u@h/db"


def test_migrations_run_once_and_are_idempotent(db_url):
    first = Store(db_url)
    assert current_version(first) == SCHEMA_VERSION
    first.close()
    second = Store(db_url)
    assert SchemaVersion.select().count() == 1
    second.close()


def _index_names(store: Store, table: str) -> set[str]:
    return {index.name for index in store.db.get_indexes(table)}


def test_migration_3_trades_three_indexes_for_smaller_ones_and_keeps_every_row(db_url):
    """A database at schema 3 (the indexes it had, rows, a tag, insights by hash and by path,
    changes) opens at the current schema with every row and the new indexes."""
    store = Store(db_url)
    for name in ("insight_content_hash_kind_is_current", "insight_unhashed_path"):
        store.execute(f"DROP INDEX {name}")
    store.execute("CREATE INDEX file_library_id ON file (library_id)")
    store.execute("CREATE INDEX insight_content_hash_kind ON insight (content_hash, kind)")
    store.execute("CREATE INDEX insight_library_id_rel_path ON insight (library_id, rel_path)")
    store.execute("CREATE INDEX insight_current_hash_kind ON insight (content_hash, kind)"
                  " WHERE is_current")
    SchemaVersion.update(version=3).execute()
    library = Library.create(name="lib", root="/r", host="h", created_at=0.0)
    columns = ("library_id", "rel_path", "path_text", "size", "mtime_ns", "inode", "device",
               "content_hash", "is_missing", "state", "first_seen", "last_seen")
    hashed = "xxh128:" + "1" * 32
    with store.write_tx():
        store.insert_rows(File, columns, [
            (library.id, b"a", "a", 1, 1, 1, 1, hashed, False, "ready", 0.0, 0.0),
            (library.id, b"b\xff", "b\\xff", 2, 2, 2, 1, None, False, "new", 0.0, 0.0)])
        store.execute("INSERT INTO tag (library_id, rel_path, content_hash, tag, created_at)"
                      " VALUES (?, ?, ?, ?, ?)", [library.id, b"a", hashed, "keep", 0.0])
        for content_hash, rel_path, current in ((hashed, b"a", True), (hashed, b"a", False),
                                                (None, b"b\xff", True)):
            store.execute(
                "INSERT INTO insight (content_hash, library_id, rel_path, kind, value,"
                " generated_at, is_current, source, enricher_checksum)"
                " VALUES (?, ?, ?, 'mime', '{}', 0, ?, 'mime', 'c')",
                [content_hash, library.id, rel_path, current])
        store.record_changes([changes.Change(changes.CREATED, "lib", "a", hashed)])
    store.close()

    store = Store(db_url)
    assert current_version(store) == SCHEMA_VERSION == 4
    files = store.query("SELECT rel_path, content_hash FROM file ORDER BY rel_path")
    assert [(bytes(path), h) for path, h in files] == [(b"a", hashed), (b"b\xff", None)]
    assert store.query("SELECT tag, content_hash FROM tag") == [("keep", hashed)]
    assert store.query("SELECT count(*) FROM insight WHERE is_current")[0][0] == 2
    assert store.query("SELECT count(*) FROM insight WHERE content_hash IS NULL")[0][0] == 1
    assert [row.path for row in changes.read(store).rows] == ["a"]
    assert "file_library_id" not in _index_names(store, "file")
    assert _index_names(store, "insight") >= {"insight_content_hash_kind_is_current",
                                              "insight_unhashed_path", "insight_library_id"}
    assert not _index_names(store, "insight") & {
        "insight_content_hash_kind", "insight_current_hash_kind", "insight_library_id_rel_path"}
    store.close()


def test_sqlite_pragmas(sqlite_url):
    store = Store(sqlite_url)
    assert store.query("PRAGMA journal_mode")[0][0] == "wal"
    assert store.query("PRAGMA busy_timeout")[0][0] >= 30_000
    assert store.query("PRAGMA synchronous")[0][0] == 1  # NORMAL
    store.close()


def test_every_sqlite_connection_gets_a_bounded_page_cache(sqlite_url):
    """peewee opens a connection per thread (the daemon's writer, the verify job, the HTTP
    thread): each one's page cache is the daemon's memory, so each must be bounded."""
    store = Store(sqlite_url)
    sizes = [store.query("PRAGMA cache_size")[0][0]]

    def in_another_thread() -> None:
        sizes.append(store.query("PRAGMA cache_size")[0][0])
        store.close()  # this thread's connection

    thread = threading.Thread(target=in_another_thread)
    thread.start()
    thread.join()
    store.close()
    # Negative: KiB; at most 16 MiB each (64 MB made a million-file daemon idle at 200 MB).
    assert sizes == [-SQLITE_CACHE_KIB, -SQLITE_CACHE_KIB]
    assert SQLITE_CACHE_KIB <= 16 * 1024


def test_raw_path_bytes_and_big_inodes_round_trip(store):
    library = Library.create(name="l", root="/l", host="h", created_at=time.time())
    weird = b"caf\xe9/\xff\x00x"
    big_inode = to_signed64((1 << 64) - 5)
    with store.write_tx():
        store.executemany(
            "INSERT INTO file (library_id, rel_path, path_text, size, mtime_ns, inode, device,"
            " is_missing, state, first_seen, last_seen) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            [(library.id, weird, "t", 1, 2**62, big_inode, 1, False, "new", 0.0, 0.0)],
        )
    row = File.get()
    assert row.rel_path == weird and row.inode == big_inode and row.mtime_ns == 2**62
    # The scope range query on raw bytes finds it under its directory, not under a sibling.
    from daemon.store.queries import file_snapshot

    assert list(file_snapshot(store, library.id, [b"caf\xe9"])) == [weird]
    assert file_snapshot(store, library.id, [b"caf"]) == {}


def test_schema_newer_than_code_is_a_clear_error(sqlite_url, tmp_path):
    store = Store(sqlite_url)
    SchemaVersion.update(version=SCHEMA_VERSION + 1).execute()
    store.close()
    config = tmp_path / "c.toml"
    config.write_text(f'[daemon]\ndatabase = "{sqlite_url}"\n')
    proc = subprocess.run([sys.executable, "-m", "daemon", "--config", str(config), "status"],
                          capture_output=True, text=True, env=cli_env(), cwd=REPO_ROOT)
    assert proc.returncode == 2 and "upgrade assetd" in proc.stderr


def test_concurrent_cli_writers_never_see_database_is_locked(env):
    """Two scans writing at once plus readers: WAL + BEGIN IMMEDIATE + busy_timeout."""
    for name in ("one", "two"):
        write_tree(env.tmp_path / name, {f"d{i}/f{j}": f"{name}{i}{j}" for i in range(20)
                                         for j in range(100)})
        env.library(name)
    env.cli("scan", "--dry-run")  # the readers need an index: only scan and run create one
    argv = [sys.executable, "-m", "daemon", "--config", str(env.config_path)]
    procs = [subprocess.Popen([*argv, *args], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                              text=True, env=cli_env(), cwd=REPO_ROOT)
             for args in (["scan", "one"], ["scan", "two"], ["status"], ["files", "--all"],
                          ["scan", "one", "--no-hash"])]
    for proc in procs:
        _, stderr = proc.communicate(timeout=120)
        assert proc.returncode == 0, stderr
        assert "locked" not in stderr
    assert env.json("status")["libraries"][0]["files"] == 2000


def test_database_connection_error_is_one_line(tmp_path):
    config = tmp_path / "c.toml"
    config.write_text('[daemon]\ndatabase = "postgresql://nobody@127.0.0.1:1/nothing"\n')
    proc = subprocess.run([sys.executable, "-m", "daemon", "--config", str(config), "status"],
                          capture_output=True, text=True, env=cli_env(), cwd=REPO_ROOT)
    assert proc.returncode == 3  # not reachable: worth retrying, not a usage error
    assert len(proc.stderr.strip().splitlines()) == 1 and "database error" in proc.stderr


def test_scan_history_is_bounded(store, monkeypatch):
    from daemon.store import queries
    from daemon.store.models import ScanRun

    monkeypatch.setattr(queries, "SCAN_RUNS_KEPT", 3)
    library = Library.create(name="l", root="/l", host="h", created_at=time.time())
    for i in range(6):
        queries.record_scan(store, library.id, host="h", started_at=i, finished_at=i,
                            status="ok", online=True, reason=None, scope="", stats={})
    assert [r.started_at for r in ScanRun.select().order_by(ScanRun.id)] == [3, 4, 5]


def test_scan_lock_says_when_it_waits(db_url):
    """A second scan of the same library waits for the first, and says so first."""
    import threading

    first, second = Store(db_url), Store(db_url)
    waited = threading.Event()
    order = []
    with first.scan_lock("photos"):
        thread = threading.Thread(target=lambda: _locked(second, waited, order))
        thread.start()
        assert waited.wait(10), "on_wait was not called"
        order.append("first done")
    thread.join(10)
    assert order == ["first done", "second ran"]
    with first.scan_lock("other", on_wait=lambda: order.append("unexpected wait")):
        pass
    assert "unexpected wait" not in order
    first.close()
    second.close()


def _locked(store, waited, order):
    with store.scan_lock("photos", on_wait=waited.set):
        order.append("second ran")


def test_bulk_insert_and_update_with_nulls_on_both_backends(store):
    library = Library.create(name="lib", root="/r", host="h", created_at=0.0)
    columns = ("library_id", "rel_path", "path_text", "size", "mtime_ns", "inode", "device",
               "content_hash", "is_missing", "state", "first_seen", "last_seen")
    rows = [(library.id, f"f{i}".encode(), f"f{i}", i, i, to_signed64(2**64 - 1 - i), 1, None,
             False, "new", 0.0, 0.0) for i in range(2500)]  # several pages on PostgreSQL
    odd = b"tab\tnew\nline\\back\rslash \xff N"
    rows.append((library.id, odd, odd.decode("utf-8", "backslashreplace"), 0, 0, 0, 0, "?%",
                 True, "new", 1e-300, float(2**53)))
    with store.write_tx():
        assert store.insert_rows(File, columns, rows) == 2501
    weird = File.get(File.rel_path == odd)
    assert (weird.path_text, weird.content_hash, weird.is_missing, weird.last_seen) == (
        odd.decode("utf-8", "backslashreplace"), "?%", True, float(2**53))
    weird.delete_instance()
    ids = [f.id for f in File.select().order_by(File.rel_path)]
    with store.write_tx():
        store.update_rows(File, "id", ("content_hash", "missing_since", "is_missing"),
                          [(row_id, None if n % 2 else "xxh128:" + "0" * 32, None, n % 3 == 0)
                           for n, row_id in enumerate(ids)])
    assert File.select().where(File.content_hash.is_null(False)).count() == 1250
    assert File.select().where(File.is_missing).count() == 834
    assert File.get(File.rel_path == b"f7").inode == to_signed64(2**64 - 8)


def test_question_marks_and_percents_inside_literals_stay_literal(store):
    assert store.query("SELECT 'a?b%c', ?", [5]) == [("a?b%c", 5)]
    assert store.query("SELECT 'it''s ?', ? || '%'", ["x"]) == [("it's ?", "x%")]


def test_change_rows_round_trip_through_the_bulk_insert(store):
    """On PostgreSQL the change feed is written with COPY: every character and NULL survive."""
    odd = "tab\tnew\nline\\back\rslash \\N é ?%"
    recorded = [changes.Change(changes.CREATED, "lib", f"f{i}", None if i % 2 else f"h{i}")
                for i in range(3000)]
    recorded.append(changes.Change(changes.MOVED, odd, odd, odd, {"old_path": odd}))
    recorded.append(changes.Change(changes.LIBRARY_OFFLINE, None))
    with store.write_tx():
        store.record_changes(recorded)
    rows = [row for page in changes.iter_all(store) for row in page.rows]
    assert [(r.kind, r.library, r.path, r.content_hash, r.detail) for r in rows] == [
        (c.kind, c.library, c.path, c.content_hash, c.detail) for c in recorded]
    assert [r.id for r in rows] == sorted(r.id for r in rows)
    assert isinstance(rows[0].at, float) and rows[0].host == store.host


def test_postgresql_sessions_run_without_jit_and_keep_the_users_options(
        pg_database, monkeypatch):
    url = new_pg_schema_url(pg_database)
    monkeypatch.setenv("PGOPTIONS", "-c work_mem=5MB")
    with_url_options = Store(url)  # the URL's options win over PGOPTIONS, as in libpq
    [(jit, work_mem, schema)] = with_url_options.query(
        "SELECT current_setting('jit'), current_setting('work_mem'), current_schema()")
    assert (jit, schema) == ("off", url.rsplit("%3D")[1]) and work_mem != "5MB"
    with_url_options.close()
    from_environment = Store(url.split("?")[0])
    assert from_environment.query("SELECT current_setting('jit'),"
                                  " current_setting('work_mem')") == [("off", "5MB")]
    from_environment.close()
    monkeypatch.setenv("PGOPTIONS", "-c jit=on")
    jit_wanted = Store(url.split("?")[0])
    assert jit_wanted.query("SELECT current_setting('jit')") == [("on",)]
    jit_wanted.close()
