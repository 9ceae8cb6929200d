"""Migration 5 (schema version 6): content hashes become 16-byte digests, nothing else changes.

The database before it is made the way schema 5 left it: real rows written by real commands
(a scan with the mime insights, tags, a user insight, a move, a vanished file, copies, an
unhashed file with a tag and an insight on its path), then every hash column turned back into
schema 5's form (`xxh128:` text; a VARCHAR(255) column on both backends) and the version set
to 5. Every output a user reads must be the same after the migration as before it.
"""

from __future__ import annotations

import os
import shutil

from daemon.store import Store, migrations
from daemon.store.migrations import HASHED_TABLES, SCHEMA_VERSION, current_version


def _as_schema_5(store: Store) -> None:
    """Hash columns as schema 5 had them: `xxh128:` + 32 hex digits, declared VARCHAR(255);
    every file's path text in full."""
    decoded = "CAST(rel_path AS TEXT)" if store.is_sqlite else "convert_from(rel_path, 'UTF8')"
    with store.write_tx():
        store.execute(f"UPDATE file SET path_text = {decoded} WHERE path_text = ''")
        for table in HASHED_TABLES:
            if store.is_sqlite:
                store.execute(f"UPDATE {table} SET content_hash = 'xxh128:'"
                              " || lower(hex(content_hash)) WHERE content_hash IS NOT NULL")
            else:
                store.execute(f"ALTER TABLE {table} ALTER COLUMN content_hash"
                              " TYPE varchar(255) USING 'xxh128:' || encode(content_hash, 'hex')")
        store.execute("UPDATE schema_version SET version = 5")
    if store.is_sqlite:
        # The declared type only sets the column's affinity, which changes nothing stored:
        # the documented way to change it in place is the schema text itself.
        store.execute("PRAGMA writable_schema = ON")
        store.execute("UPDATE sqlite_master SET sql = replace(sql, '\"content_hash\" BLOB',"
                      " '\"content_hash\" VARCHAR(255)') WHERE type = 'table'")
        store.execute("PRAGMA writable_schema = OFF")
    store.close()


def _column_types(store: Store) -> set[str]:
    if store.is_sqlite:
        return {store.query(f"SELECT type FROM pragma_table_info('{table}')"
                            " WHERE name = 'content_hash'")[0][0] for table in HASHED_TABLES}
    return {store.query("SELECT data_type FROM information_schema.columns WHERE table_schema ="
                        " current_schema() AND table_name = ? AND column_name = 'content_hash'",
                        [table])[0][0] for table in HASHED_TABLES}


def _stored_kinds(store: Store) -> set[str]:
    """How the hashes are stored: their SQL type (SQLite) or their length (both)."""
    kinds = set()
    for table in HASHED_TABLES:
        if store.is_sqlite:
            kinds |= {kind for (kind,) in store.query(
                f"SELECT DISTINCT typeof(content_hash) FROM {table}"
                " WHERE content_hash IS NOT NULL")}
        kinds |= {f"length {n}" for (n,) in store.query(
            f"SELECT DISTINCT length(content_hash) FROM {table}"
            " WHERE content_hash IS NOT NULL")}
    return kinds


def _path_texts(store: Store) -> dict[str, str]:
    """Two files' stored `path_text`: a valid UTF-8 name's and an undecodable one's."""
    return {bytes(rel).decode("utf-8", "backslashreplace"): text for rel, text in store.query(
        "SELECT rel_path, path_text FROM file WHERE rel_path IN (?, ?)",
        [b"a.txt", b"caf\xe9.txt"])}


def _outputs(env, paths: list[str]) -> dict:
    return {
        "files": env.cli("files", "--all", "--json").stdout,
        "tags": env.cli("tag", "ls", "--json").stdout,
        "insights": [env.cli("insight", "show", "--history", path, "--json").stdout
                     for path in paths],
        "dupes": env.cli("dupes", "--json").stdout,
        "changes": env.cli("changes", "--json").stdout,
        "copy": env.cli("files", "--hash", env.json_lines("files")[0]["hash"], "--json").stdout,
    }


def test_migration_5_keeps_every_row_and_what_every_output_shows(env, monkeypatch):
    root = env.library("photos", {"a.txt": "alpha", "copy/a.txt": "alpha", "b.png": b"\x89PNG\r\n",
                                  "gone.txt": "soon gone", "moved.txt": "moving"})
    bad_name = os.fsencode(root) + b"/caf\xe9.txt"
    with open(bad_name, "wb") as handle:
        handle.write(b"latin-1 name")
    env.cli("scan")
    env.cli("tag", "add", str(root / "a.txt"), "keep", "two")
    env.cli("insight", "set", str(root / "b.png"), "note", '{"by": "hand"}')
    env.cli("insight", "set", str(root / "b.png"), "note", '{"by": "hand", "again": 1}')
    (root / "gone.txt").unlink()
    shutil.move(root / "moved.txt", root / "copy" / "moved.txt")
    (root / "unhashed.txt").write_text("no hash yet")
    env.cli("scan", "--no-hash")
    env.cli("tag", "add", str(root / "unhashed.txt"), "pending")
    env.cli("insight", "set", str(root / "unhashed.txt"), "note", '{"by": "path"}')
    paths = [str(root / name) for name in ("a.txt", "copy/a.txt", "b.png", "copy/moved.txt",
                                           "unhashed.txt")] + [os.fsdecode(bad_name)]
    before = _outputs(env, paths)
    assert '"keep"' in before["tags"] and '"pending"' in before["tags"]
    assert before["dupes"].count("xxh128:") == 1 and before["copy"].count("xxh128:") == 2

    _as_schema_5(Store(env.db_url))
    with monkeypatch.context() as patch:  # opened as schema 5's assetd would: no migration
        patch.setattr(migrations, "MIGRATIONS", migrations.MIGRATIONS[:5])
        patch.setattr(migrations, "SCHEMA_VERSION", 5)
        store = Store(env.db_url)
    assert current_version(store) == 5
    assert _column_types(store) == ({"VARCHAR(255)"} if store.is_sqlite
                                    else {"character varying"})
    assert _stored_kinds(store) == ({"text", "length 39"} if store.is_sqlite else {"length 39"})
    assert _path_texts(store) == {"caf\\xe9.txt": "caf\\xe9.txt", "a.txt": "a.txt"}
    store.close()

    after = _outputs(env, paths)  # the first command migrates
    assert after == before
    store = Store(env.db_url)
    assert current_version(store) == SCHEMA_VERSION
    assert _stored_kinds(store) == ({"blob", "length 16"} if store.is_sqlite else {"length 16"})
    # Stored in full only where the name is not valid UTF-8 (`paths.py`).
    assert _path_texts(store) == {"caf\\xe9.txt": "caf\\xe9.txt", "a.txt": ""}
    counts = {table: store.query(f"SELECT count(*) FROM {table}")[0][0]
              for table in (*HASHED_TABLES, "change_log")}
    store.close()
    # Idempotent: opening again converts nothing twice, and the indexes still serve.
    store = Store(env.db_url)
    assert {table: store.query(f"SELECT count(*) FROM {table}")[0][0]
            for table in counts} == counts
    store.close()
    assert env.cli("reconcile", "--json").returncode == 0
    assert _outputs(env, paths)["files"] == before["files"]  # nothing went back to enriching
