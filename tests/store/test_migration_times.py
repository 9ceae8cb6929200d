"""Migration 8 (schema version 9): a file's `first_seen` and `last_seen` as whole seconds,
the change feed's time as integer milliseconds (`at_ms`), an insight's kind as a label id;
nothing else changes.

The database before it is made by real commands (a scan with the mime insights, a user's
insight, a tag, an edited file, a missing one), then its `file`, `insight` and `change_log`
tables turned back into schema 8's form (`old_schemas`: float seconds, with fractions as
`time.time()` gives them; the kind as text) and the version set to 8. Every output a user
reads must be the same after the migration as before it; a change's `at` as schema 8's
assetd printed it from the float, including one whose microseconds round up into the next
millisecond.
"""

from __future__ import annotations

import json
from functools import partial

from daemon.store import Store, changes, labels, migrations
from daemon.store.migrations import SCHEMA_VERSION, current_version
from daemon.units import iso_utc
from tests.store.old_schemas import as_schema_8, outputs, reopened_as

# By change id: none, 999.8 µs (printed as the next millisecond), 999.0 µs (not).
SUB_MS = (0.0, 0.0009998, 0.000999)


def _seen(store: Store) -> dict[bytes, tuple]:
    return {bytes(path): (first, last) for path, first, last in store.query(
        "SELECT rel_path, first_seen, last_seen FROM file")}


def _types(store: Store) -> set[str]:
    """The stored types of first_seen, last_seen and at_ms."""
    if store.is_sqlite:
        return {kind for query in ("SELECT DISTINCT typeof(first_seen) FROM file",
                                   "SELECT DISTINCT typeof(last_seen) FROM file"
                                   " WHERE last_seen IS NOT NULL",
                                   f"SELECT DISTINCT typeof(at_ms) FROM {changes.TABLE}")
                for (kind,) in store.query(query)}
    return {kind for (kind,) in store.query(
        "SELECT data_type FROM information_schema.columns WHERE table_schema ="
        " current_schema() AND (table_name, column_name) IN"
        " (('file', 'first_seen'), ('file', 'last_seen'), ('change_log', 'at_ms'))")}


def _kinds(store: Store) -> list[tuple]:
    """(id, kind as text, current) of every insight."""
    return sorted(store.query(f"SELECT id, {labels.insight_kind('insight')}, is_current"
                              " FROM insight") if migrations._has_column(store, "insight",
                                                                          "kind_label")
                  else store.query("SELECT id, kind, is_current FROM insight"))


def test_migration_8_keeps_every_time_and_kind_as_every_output_shows_it(env, monkeypatch):
    root = env.library("photos", {"a.txt": "alpha", "b.png": b"\x89PNG", "gone.txt": "soon",
                                  "edited.txt": "first"})
    env.cli("scan")
    env.cli("insight", "set", str(root / "b.png"), "note", '{"by": "hand"}')
    env.cli("tag", "add", str(root / "a.txt"), "keep")
    (root / "gone.txt").unlink()
    (root / "edited.txt").write_text("second, longer")  # its row rewritten: last_seen
    env.cli("scan")
    paths = [str(root / name) for name in ("a.txt", "b.png", "edited.txt")]
    before = outputs(env, paths)
    store = Store(env.db_url)
    seen, kinds = _seen(store), _kinds(store)
    assert {path for path, (_, last) in seen.items() if last is not None} == {b"edited.txt"}
    assert {kind for _, kind, _ in kinds} == {"mime", "note"}
    newest = changes.last_id(store)
    with store.write_tx():  # a dropped newest change: its id is never handed out again
        store.execute(f"DELETE FROM {changes.TABLE} WHERE id = ?", [newest])
    before["changes"] = before["changes"].rsplit("{", 1)[0]  # without the newest line
    store.close()

    store = reopened_as(env.db_url, 8, partial(as_schema_8, sub_ms=SUB_MS), monkeypatch)
    assert current_version(store) == 8
    printed = {change_id: iso_utc(at, timespec="milliseconds")
               for change_id, at in store.query(f"SELECT id, at FROM {changes.TABLE}")}
    assert all(first % 1 == 0.25 for first, _ in _seen(store).values())
    assert _kinds(store) == kinds
    assert "insight_content_hash_kind_is_current" in {
        index.name for index in store.db.get_indexes("insight")}
    store.close()

    after = outputs(env, paths)  # the first command migrates
    assert {key: after[key] for key in ("files", "status", "insights")} == {
        key: before[key] for key in ("files", "status", "insights")}
    lines = [json.loads(line) for line in after["changes"].splitlines()]
    assert [line | {"at": None} for line in lines] == [
        json.loads(line) | {"at": None} for line in before["changes"].splitlines()]
    assert {line["id"]: line["at"] for line in lines} == printed
    rounded_up = [line for line, old in zip(lines, before["changes"].splitlines(), strict=True)
                  if line["at"] != json.loads(old)["at"]]
    assert rounded_up and all(line["id"] % 3 == 1 for line in rounded_up)

    store = Store(env.db_url)
    assert current_version(store) == SCHEMA_VERSION
    assert _seen(store) == seen
    assert _types(store) == ({"integer"} if store.is_sqlite else {"bigint"})
    assert _kinds(store) == kinds
    assert {index.name for index in store.db.get_indexes("insight")} - {"insight_pkey"} == {
        "insight_content_hash_kind_label_is_current", "insight_unhashed_path"}
    store.close()
    (root / "new.txt").write_text("after the migration")
    env.cli("scan")
    assert [line["id"] for line in env.json_lines("changes", "--since", str(newest - 1))] == [
        newest + 1, newest + 2]  # created and its mime insight
