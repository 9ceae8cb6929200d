"""Short texts that repeat on many rows, stored once: a row holds the label's id.

The change feed names a host, a library, and a tag or insight kind on every row; written out,
those texts were ~35 of a change row's ~110 bytes (100k files, a cold scan: two changes a
file). Files and insights label their enricher checksums, and insights their source (schema
8) and their kind (schema 9), the same way, as the `mime` insights label their values. A label
is never deleted or changed, so an id means one text for good. Ids are looked up in the
database inside the writer's transaction, never cached in the process: an id taken in a
transaction that rolls back must not outlive it (the next insert would reuse it).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from daemon.store.db import Store

TABLE = "label"


def create_table(store: Store) -> None:
    id_column = "id INTEGER PRIMARY KEY" if store.is_sqlite else "id SERIAL PRIMARY KEY"
    store.execute(f"CREATE TABLE IF NOT EXISTS {TABLE} ({id_column}, text TEXT NOT NULL UNIQUE)")


def insight_value(alias: str) -> str:
    """SQL for an insight row's value JSON: kinds whose values repeat (`insights.
    LABELLED_KINDS`, the mime type of most files) store it as a label, '' in `value`."""
    return (f"CASE WHEN {alias}.value_label IS NULL THEN {alias}.value"
            f" ELSE (SELECT text FROM {TABLE} WHERE id = {alias}.value_label) END")


def insight_kind(alias: str) -> str:
    """SQL for an insight row's kind, as its text: the row holds its kind's label id."""
    return f"(SELECT text FROM {TABLE} WHERE id = {alias}.kind_label)"


def insight_kind_is(alias: str) -> str:
    """SQL true when an insight row is of the kind given as a parameter (its text). The
    label is looked up once per statement, not per row (0, no label's id, when no row was
    ever of that kind), and the (content_hash, kind_label, is_current) index still serves."""
    return f"{alias}.kind_label = COALESCE((SELECT id FROM {TABLE} WHERE text = ?), 0)"


def ids(store: Store, texts: Iterable[str | None]) -> dict[str, int]:
    """The id of each text, labels created as needed (call inside `write_tx`)."""
    wanted = sorted({text for text in texts if text is not None})
    if not wanted:
        return {}
    found = _lookup(store, wanted)
    missing = [text for text in wanted if text not in found]
    if missing:
        store.executemany(f"INSERT INTO {TABLE} (text) VALUES (?) ON CONFLICT (text) DO NOTHING",
                          [(text,) for text in missing])
        found.update(_lookup(store, missing))
    return found


def id_of(store: Store, text: str) -> int | None:
    """The id of an existing label (None: no row carries it)."""
    rows = store.query(f"SELECT id FROM {TABLE} WHERE text = ?", [text])
    return rows[0][0] if rows else None


def _lookup(store: Store, texts: list[str]) -> dict[str, int]:
    found: dict[str, int] = {}
    for start in range(0, len(texts), 500):
        chunk = texts[start:start + 500]
        found.update((text, label_id) for label_id, text in store.query(
            f"SELECT id, text FROM {TABLE} WHERE text IN ("
            + ", ".join("?" for _ in chunk) + ")", chunk))
    return found
