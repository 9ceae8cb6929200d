"""The store on both backends: migrations, URLs, raw bytes paths, concurrent writers."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
import threading
import time

from daemon.config import empty_config
from daemon.meta import enrichers
from daemon.meta.enrichers import enricher_checksum, enricher_set_checksum
from daemon.scan.walk import to_signed64
from daemon.store import Store, changes, hashes, labels, migrations, redact_url, sqlite_path
from daemon.store.db import SQLITE_CACHE_KIB
from daemon.store.migrations import SCHEMA_VERSION, current_version
from daemon.store.models import (
    ALL_MODELS,
    STATE_CODES,
    STATE_NAMES,
    STATE_NEW,
    File,
    Library,
    SchemaVersion,
)
from daemon.units import iso_utc
from tests.conftest import REPO_ROOT, cli_env, new_pg_schema_url, write_tree
from tests.store.old_schemas import as_schema_7, as_schema_8


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


def _store_at_version(db_url: str, version: int, monkeypatch) -> Store:
    """A database as a release at schema `version` left it: only the migrations before it.

    Migration 0 creates the tables from today's models: before schema 9 a file's seen-times
    were floats, before schema 8 its state and enricher checksum were text (`old_schemas`),
    before schema 6 the content hash columns held
    `xxh128:` text (PostgreSQL: varchar), as they are made here again. Write
    their rows with `insert_values` or raw SQL (`insert_rows` writes today's digests)."""
    with monkeypatch.context() as patch:
        patch.setattr(migrations, "MIGRATIONS", migrations.MIGRATIONS[:version])
        patch.setattr(migrations, "SCHEMA_VERSION", version)
        store = Store(db_url)
    if version < 8:
        as_schema_7(store)
    elif version < 9:
        as_schema_8(store)
    if version < 6 and not store.is_sqlite:  # SQLite keeps text in any column as it is
        for table in migrations.HASHED_TABLES:
            store.execute(f"ALTER TABLE {table} ALTER COLUMN content_hash"
                          " TYPE varchar(255) USING NULL")
    return store


def _text_hashes(rows: list[tuple]) -> list[tuple]:
    """Rows with their digests (bytes, or psycopg2's memoryview) as the text the CLI shows."""
    return [tuple(hashes.from_db(v) if isinstance(v, bytes | memoryview) and len(v) == 16
                  else v for v in row) for row in rows]


def test_migration_3_trades_three_indexes_for_smaller_ones_and_keeps_every_row(
        db_url, monkeypatch):
    """A database at schema 3 (the indexes it had, rows, a tag, insights by hash and by path)
    opens at the current schema with every row and the new indexes."""
    store = _store_at_version(db_url, 3, monkeypatch)
    store.execute("CREATE INDEX file_library_id ON file (library_id)")
    store.execute("CREATE INDEX insight_content_hash_kind ON insight (content_hash, kind)")
    store.execute("CREATE INDEX insight_library_id_rel_path ON insight (library_id, rel_path)")
    store.execute("CREATE INDEX insight_current_hash_kind ON insight (content_hash, kind)"
                  " WHERE is_current")
    library = Library.create(name="lib", root="/r", host="h", created_at=0.0)
    columns = ("library_id", "rel_path", "path_text", "size", "mtime_ns", "inode", "device",
               "content_hash", "is_missing", "state", "first_seen", "last_seen")
    hashed = "xxh128:" + "1" * 32
    with store.write_tx():
        store.insert_values("file", columns, [
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
    store.close()

    store = Store(db_url)
    assert current_version(store) == SCHEMA_VERSION
    files = store.query("SELECT rel_path, content_hash FROM file ORDER BY rel_path")
    assert [(bytes(path), hashes.from_db(h)) for path, h in files] == [
        (b"a", hashed), (b"b\xff", None)]
    assert _text_hashes(store.query("SELECT tag, content_hash FROM tag")) == [("keep", hashed)]
    assert store.query("SELECT count(*) FROM insight WHERE is_current")[0][0] == 2
    assert store.query("SELECT count(*) FROM insight WHERE content_hash IS NULL")[0][0] == 1
    assert "file_library_id" not in _index_names(store, "file")
    # Its kind a label id since schema 9 (migration 8), the index renamed with the column.
    assert _index_names(store, "insight") >= {"insight_content_hash_kind_label_is_current",
                                              "insight_unhashed_path"}
    assert not _index_names(store, "insight") & {
        "insight_content_hash_kind", "insight_current_hash_kind", "insight_library_id_rel_path",
        "insight_content_hash_kind_is_current"}
    store.close()


def _old_checksum(text: str) -> str:
    """An enricher checksum as schema 4 stored it: 32 hex digits."""
    return hashlib.sha256(text.encode()).hexdigest()[:32]


def test_migration_4_keeps_every_row_and_what_every_output_shows(db_url, monkeypatch):
    """A database at schema 4 with real rows (present, missing and unhashed files, tags by
    hash and by path, current and demoted insights, an insight by path, changes of every
    shape, ids already dropped by retention) opens at schema 5 with nothing lost: the same
    files, tags, insights and change feed (ids, times, hosts, libraries, hashes, details), the
    files still settled under the same enrichers, and new changes after the old ids."""
    store = _store_at_version(db_url, 4, monkeypatch)
    store.execute("CREATE INDEX insight_library_id ON insight (library_id)")
    library = Library.create(name="lib", root="/r", host="h", created_at=0.0)
    other = Library.create(name="other", root="/o", host="h", created_at=0.0)
    mime = next(e for e in empty_config().enrichers if e.name == "mime")
    old_mime = _old_checksum(json.dumps([mime.name, list(mime.match), list(mime.command),
                                         mime.timeout_s, enrichers._builtin_version("mime")]))
    old_set = _old_checksum(json.dumps(sorted([old_mime])))
    hashed, copied = "xxh128:" + "1" * 32, "xxh128:" + "ab" * 16
    columns = ("library_id", "rel_path", "path_text", "size", "mtime_ns", "inode", "device",
               "content_hash", "is_missing", "missing_since", "state", "enricher_checksum",
               "first_seen", "last_seen")
    with store.write_tx():
        store.insert_values("file", columns, [
            (library.id, b"a", "a", 1, 1, 1, 1, hashed, False, None, "ready", old_set, 1.5, 2.5),
            (library.id, b"gone", "gone", 3, 3, 3, 1, copied, True, 7.25, "ready", old_set,
             0.0, 0.0),
            (other.id, b"b\xff", "b\\xff", 2, 2, 2, 1, None, False, None, "new", None, 0.0,
             0.0)])
        for tag, rel_path, content_hash in (("keep", b"a", hashed), ("old", b"gone", copied),
                                            ("unhashed", b"b\xff", None)):
            store.execute("INSERT INTO tag (library_id, rel_path, content_hash, tag, created_at)"
                          " VALUES (?, ?, ?, ?, ?)", [library.id if content_hash else other.id,
                                                      rel_path, content_hash, tag, 0.0])
        for content_hash, library_id, rel_path, value, current, source in (
                (hashed, library.id, b"a", '{"mime": "text/plain"}', True, "mime"),
                (hashed, library.id, b"a", '{"mime": "old"}', False, "mime"),
                (copied, library.id, b"gone", '{"mime": "image/png"}', True, "mime"),
                (None, other.id, b"b\xff", '{"note": 1}', True, "user")):
            store.execute(
                "INSERT INTO insight (content_hash, library_id, rel_path, kind, value,"
                " generated_at, is_current, source, enricher_checksum)"
                " VALUES (?, ?, ?, ?, ?, 5.5, ?, ?, ?)",
                [content_hash, library_id, rel_path, "note" if source == "user" else "mime",
                 value, current, source, old_mime if source == "mime" else None])
        old_changes = [
            (1000.125, "nas1", "lib", "created", "a", hashed, None),
            (1000.125, "nas1", "lib", "insight", "a", hashed, '{"insight_kind": "mime"}'),
            (1001.0, "nas2", "lib", "moved", "gone", copied, '{"old_path": "g\\\\xff"}'),
            (1002.0, "nas2", "lib", "tagged", "a", hashed, '{"tag": "keep"}'),
            (1003.0, "nas1", "other", "missing", "gone", None, None),
            (1004.0, "nas1", None, "library_offline", None, None, None),
            (1005.0, "nas1", "lib", "created", "dropped", hashed, None)]
        store.insert_values(changes.TABLE, ("at", "host", "library", "kind", "path", "hash",
                                            "detail"), old_changes)
    store.execute(f"DELETE FROM {changes.TABLE} WHERE id = 7")  # retention dropped the newest
    store.close()
    # What `assetd changes --json` printed of them at schema 4.
    before = [{"id": i, "at": iso_utc(at, timespec="milliseconds"), "host": host,
               "library": lib, "path": path, "kind": kind, "hash": h,
               **(json.loads(detail) if detail else {})}
              for i, (at, host, lib, kind, path, h, detail) in enumerate(old_changes[:6], 1)]

    store = Store(db_url)
    assert current_version(store) == SCHEMA_VERSION
    files = _text_hashes(store.query(
        "SELECT f.rel_path, f.content_hash, f.is_missing, f.missing_since, f.state, l.text"
        f" FROM file f LEFT JOIN {labels.TABLE} l ON l.id = f.checksum_label ORDER BY f.id"))
    assert [(bytes(r[0]), *r[1:4], STATE_NAMES[r[4]]) for r in files] == [
        (b"a", hashed, False, None, "ready"), (b"gone", copied, True, 7.25, "ready"),
        (b"b\xff", None, False, None, "new")]
    # Still settled: the stored set checksum is what this code computes for the same set.
    assert [r[5] for r in files] == [enricher_set_checksum([mime])] * 2 + [None]
    tags = _text_hashes(store.query("SELECT tag, library_id, rel_path, content_hash FROM tag"
                                    " ORDER BY tag"))
    assert [(t, lib, bytes(p), h) for t, lib, p, h in tags] == [
        ("keep", library.id, b"a", hashed), ("old", library.id, b"gone", copied),
        ("unhashed", other.id, b"b\xff", None)]
    insights = _text_hashes(store.query(
        f"SELECT content_hash, library_id, rel_path, {labels.insight_kind('insight')},"
        f" {labels.insight_value('insight')},"
        f" is_current, (SELECT text FROM {labels.TABLE} WHERE id = source_label),"
        f" (SELECT text FROM {labels.TABLE} WHERE id = checksum_label) FROM insight ORDER BY id"))
    assert [(*r[:2], r[2] and bytes(r[2]), *r[3:]) for r in insights] == [
        (hashed, None, None, "mime", '{"mime": "text/plain"}', True, "mime",
         enricher_checksum(mime)),
        (hashed, None, None, "mime", '{"mime": "old"}', False, "mime", enricher_checksum(mime)),
        (copied, None, None, "mime", '{"mime": "image/png"}', True, "mime",
         enricher_checksum(mime)),
        (None, other.id, b"b\xff", "note", '{"note": 1}', True, "user", None)]
    assert "insight_library_id" not in _index_names(store, "insight")
    if not store.is_sqlite:  # the copied table's key keeps the name a fresh one has
        assert store.query("SELECT count(*) FROM pg_indexes WHERE indexname = ?"
                           " AND schemaname = current_schema()",
                           [f"{changes.TABLE}_pkey"])[0][0] == 1
    assert store.query("SELECT count(*) FROM insight WHERE value = ''"
                       " AND value_label IS NOT NULL")[0][0] == 3  # the mime ones
    after = [row.as_json() for row in changes.read(store).rows]
    assert after == before and [row["id"] for row in after] == [1, 2, 3, 4, 5, 6]
    assert after[2]["old_path"] == "g\\xff" and after[3]["tag"] == "keep"
    assert [r.id for r in changes.read(store, library="other").rows] == [5]
    with store.write_tx():
        store.record_changes([changes.Change(changes.TAGGED, "lib", "a", hashed, {"tag": "x"})])
    [new] = changes.read(store, since=6).rows
    assert (new.id, new.kind, new.library, new.content_hash, new.detail) == (
        8, "tagged", "lib", hashed, {"tag": "x"})
    store.close()


def _foreign_keys(store: Store) -> set[tuple[str, str]]:
    """(table, referenced table) of every foreign-key constraint of assetd's tables."""
    if store.is_sqlite:
        return {(model._meta.table_name, row[2])
                for model in ALL_MODELS
                for row in store.query(f"PRAGMA foreign_key_list({model._meta.table_name})")}
    return set(store.query(
        "SELECT conrelid::regclass::text, confrelid::regclass::text FROM pg_constraint"
        " WHERE contype = 'f' AND connamespace = current_schema()::regnamespace"))


def test_migration_6_drops_only_postgresqls_check_of_a_files_library(db_url, monkeypatch):
    """PostgreSQL checked file.library_id with a trigger per COPYed row (a third of a scan's
    insert); the rows stay, every other table keeps its key, SQLite keeps all of them."""
    store = _store_at_version(db_url, 6, monkeypatch)
    every_key = {("file", "library"), ("tag", "library"), ("insight", "library"),
                 ("scan_run", "library")}
    assert _foreign_keys(store) == every_key
    library = Library.create(name="lib", root="/lib", host="h", created_at=1.0)
    store.insert_values("file", ["library_id", "rel_path", "path_text", "size", "mtime_ns",
                                 "inode", "device", "is_missing", "state", "first_seen",
                                 "last_seen"],
                        [(library.id, b"a", "", 1, 2, 3, 4, False, "new", 5.0, 5.0)])
    store.close()

    store = Store(db_url)
    assert current_version(store) == SCHEMA_VERSION
    assert _foreign_keys(store) == (every_key if store.is_sqlite
                                    else every_key - {("file", "library")})
    rows = store.query("SELECT library_id, rel_path, state FROM file")
    assert [(r[0], bytes(r[1]), STATE_NAMES[r[2]]) for r in rows] == [(library.id, b"a", "new")]
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
            [(library.id, weird, "t", 1, 2**62, big_inode, 1, False, STATE_CODES[STATE_NEW],
              0.0, 0.0)],
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
               "content_hash", "is_missing", "missing_since", "state", "first_seen",
               "last_seen")
    rows = [(library.id, f"f{i}".encode(), f"f{i}", i, i, to_signed64(2**64 - 1 - i), 1, None,
             False, None, "new", 0, 0) for i in range(2500)]  # several pages on PostgreSQL
    odd = b"tab\tnew\nline\\back\rslash \xff N"
    rows.append((library.id, odd, odd.decode("utf-8", "backslashreplace"), 0, 0, 0, 0,
                 "xxh128:" + "f" * 32, True, 1e-300, "new", 0, 2**53))
    with store.write_tx():
        assert store.insert_rows(File, columns, rows) == 2501
    weird = File.get(File.rel_path == odd)
    assert (weird.path_text, weird.content_hash, weird.is_missing, weird.missing_since,
            weird.last_seen) == (odd.decode("utf-8", "backslashreplace"), "xxh128:" + "f" * 32,
                                 True, 1e-300, 2**53)
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
    recorded = [changes.Change(changes.CREATED, "lib", f"f{i}",
                               None if i % 2 else f"xxh128:{i:032x}") for i in range(3000)]
    recorded.append(changes.Change(changes.MOVED, odd, odd, "xxh128:" + "f" * 32,
                                   {"old_path": odd}))
    recorded.append(changes.Change(changes.TAGGED, odd, odd, None, {"tag": odd}))
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
