"""Migration 7 (schema version 8): a file's state as a code, its enricher set checksum, an
insight's source and its enricher checksum as label ids; nothing else changes.

The database before it is made by real commands (a scan with the mime insights, a user's
insight, a file left `new` by `--no-hash`, one `enriching` under an enricher that has not run,
a missing one), then its `file` and `insight` tables turned back into schema 7's form
(`old_schemas`) and the version set to 7.
Every output a user reads must be the same after the migration as before it, and the files
settled before must still be settled (no rescan, no re-enrichment).
"""

from __future__ import annotations

from daemon.config import empty_config
from daemon.meta.enrichers import enricher_checksum
from daemon.store import Store, labels
from daemon.store.migrations import SCHEMA_VERSION, current_version
from daemon.store.models import STATE_CODES
from tests.store.old_schemas import as_schema_7, outputs, reopened_as

MIME = next(e for e in empty_config().enrichers if e.name == "mime")


def _stored(store: Store) -> set[tuple]:
    """(state, checksum text) as stored, with the column types."""
    if store.is_sqlite:
        return set(store.query("SELECT typeof(state), state, typeof(checksum_label), l.text"
                               f" FROM file LEFT JOIN {labels.TABLE} l ON l.id = checksum_label"))
    return {(type(state).__name__, state, type(label).__name__, text) for state, label, text in
            store.query(f"SELECT state, checksum_label, l.text FROM file"
                        f" LEFT JOIN {labels.TABLE} l ON l.id = checksum_label")}


def _insights(store: Store) -> set[tuple]:
    """(kind, source, enricher checksum, current) of every insight, as texts."""
    return set(store.query(
        f"SELECT k.text, s.text, c.text, i.is_current FROM insight i"
        f" JOIN {labels.TABLE} k ON k.id = i.kind_label"
        f" JOIN {labels.TABLE} s ON s.id = i.source_label"
        f" LEFT JOIN {labels.TABLE} c ON c.id = i.checksum_label"))


def test_migration_7_keeps_every_state_and_what_every_output_shows(env, monkeypatch):
    root = env.library("photos", {"a.txt": "alpha", "copy/a.txt": "alpha", "b.png": b"\x89PNG",
                                  "gone.txt": "soon gone", "edited.txt": "first"})
    env.cli("scan")
    env.cli("insight", "set", str(root / "b.png"), "note", '{"by": "hand"}')
    env.cli("insight", "set", str(root / "b.png"), "mime", '{"mime": "image/x-mine"}')
    (root / "gone.txt").unlink()
    (root / "edited.txt").write_text("second, longer")  # its row rewritten: last_seen
    (root / "waiting.txt").write_text("an enricher has not run on me")
    env.cli("scan", "--no-enrich")
    (root / "unhashed.txt").write_text("no hash yet")
    env.cli("scan", "--no-hash", "--no-enrich")
    paths = [str(root / name) for name in ("a.txt", "b.png", "waiting.txt")]
    before = outputs(env, paths)
    assert '"state": "new"' in before["files"] and '"state": "enriching"' in before["files"]
    assert '"state": "ready"' in before["files"]
    store = Store(env.db_url)
    settled, insights = _stored(store), _insights(store)
    assert ("note", "user", None, True) in insights and ("mime", "user", None, True) in insights
    assert ("mime", "mime", enricher_checksum(MIME), False) in insights
    store.close()

    store = reopened_as(env.db_url, 7, as_schema_7, monkeypatch)
    assert current_version(store) == 7
    assert {state for (state,) in store.query("SELECT DISTINCT state FROM file")} == {
        "new", "enriching", "ready"}
    assert len(store.query("SELECT DISTINCT enricher_checksum FROM file"
                           " WHERE enricher_checksum IS NOT NULL")[0][0]) == 10
    assert {row[1:] for row in insights} == set(store.query(
        "SELECT source, enricher_checksum, is_current FROM insight"))
    rewritten = {bytes(path) for (path,) in store.query(
        "SELECT rel_path FROM file WHERE last_seen > first_seen")}
    assert rewritten == {b"edited.txt"}
    store.close()

    after = outputs(env, paths)  # the first command migrates
    assert after == before
    store = Store(env.db_url)
    assert current_version(store) == SCHEMA_VERSION
    assert _stored(store) == settled and _insights(store) == insights
    assert {bytes(path) for (path,) in store.query(
        "SELECT rel_path FROM file WHERE last_seen IS NOT NULL")} == rewritten
    assert {state for _, state, *_ in settled} == set(STATE_CODES.values())
    assert {index.name for index in store.db.get_indexes("file")} - {"file_pkey"} == {
        "file_content_hash", "file_library_id_rel_path", "file_inode",
        "file_state_checksum_label"}
    # Rebuilt (SQLite) or rewritten (PostgreSQL) as today's models have them: migration 8's
    # kind label too.
    assert {index.name for index in store.db.get_indexes("insight")} - {"insight_pkey"} == {
        "insight_content_hash_kind_label_is_current", "insight_unhashed_path"}
    store.close()
    # Still settled under the same enricher set: nothing goes back to `enriching`.
    assert env.cli("reconcile", "--json").returncode == 0
    assert outputs(env, paths)["files"] == before["files"]
