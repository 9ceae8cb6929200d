"""Insights: derived data keyed by content, at most one current per (content_hash, kind).

Writing an insight demotes the current one of its kind (kept as history, `is_current` false)
in the same transaction. An insight set on a file whose hash is not known yet is stored by
(library, rel_path) with a NULL hash; the NULL-hash fill pass gives it the hash later.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Sequence
from typing import Any, NamedTuple

from daemon.config import EnricherConfig
from daemon.errors import UsageError
from daemon.meta.indexed import IndexedFile
from daemon.store import Store, labels
from daemon.store import changes as feed
from daemon.store.changes import Change
from daemon.store.hashes import to_db
from daemon.store.models import Insight
from daemon.units import iso_utc

USER_SOURCE = "user"
KIND_RE = re.compile(r"^[A-Za-z0-9_.:/-]+$")

# Kinds whose values repeat from file to file, stored once as labels: a 100k-file library
# has a few dozen media types, and the mime value's ~60 B of JSON was a third of its row.
LABELLED_KINDS = frozenset({"mime"})
# The columns of a new insight row, as `stored_rows` builds it.
INSIGHT_COLUMNS = ("content_hash", "library_id", "rel_path", "kind_label", "value",
                   "value_label", "generated_at", "is_current", "source_label", "checksum_label")
_DEMOTE_BY_HASH = (
    "UPDATE insight SET is_current = ? WHERE content_hash = ? AND kind_label = ? AND is_current"
)
_DEMOTE_BY_PATH = (
    "UPDATE insight SET is_current = ? WHERE content_hash IS NULL AND library_id = ?"
    " AND rel_path = ? AND kind_label = ? AND is_current"
)


def satisfied_condition(
    enricher: EnricherConfig, checksum: str, alias: str = "i"
) -> tuple[str, list[Any]]:
    """SQL for an insight row that leaves `enricher` nothing to do for that row's content.

    Either the enricher ran on the content with its current config (a success or an error;
    current or since demoted, so a collapse never makes it run again), or someone else (a
    user) supplied a current insight of that kind, which the enricher must not overwrite.
    The lifecycle pass and the enrich runner both ask this one question.
    """
    a = alias
    sql = (
        f"({labels.insight_kind_is(a)} AND (({a}.source_label = {_LABEL_ID} AND"
        f" {a}.checksum_label = {_LABEL_ID}) OR ({a}.is_current AND"
        f" {a}.source_label <> {_LABEL_ID})))"
    )
    return sql, [enricher.name, enricher.name, checksum, enricher.name]


# A label's id for a text parameter, 0 (no label's id) when no row was ever labelled with
# it: evaluated once per statement, not per row.
_LABEL_ID = f"COALESCE((SELECT id FROM {labels.TABLE} WHERE text = ?), 0)"


def record_insight(
    store: Store,
    *,
    content_hash: str | None,
    library_id: int,
    rel_path: bytes,
    kind: str,
    value: Any,
    source: str,
    enricher_checksum: str | None = None,
    generated_at: float | None = None,
) -> None:
    """Store a new current insight, demoting the current one of its kind."""
    record_insights(store, [NewInsight(
        content_hash, library_id, rel_path, kind, value, source, enricher_checksum,
        time.time() if generated_at is None else generated_at,
    )])


class NewInsight(NamedTuple):
    content_hash: str | None
    library_id: int
    rel_path: bytes
    kind: str
    value: Any
    source: str
    enricher_checksum: str | None
    generated_at: float


def record_insights(store: Store, insights: Sequence[NewInsight]) -> None:
    """Several new current insights in one transaction (at most one per (hash, kind)).

    The enrich runner writes its results in batches: one transaction per result made the
    commit, not the enricher, the cost of enriching 100k small files.
    """
    with store.write_tx():
        kind_ids = labels.ids(store, [i.kind for i in insights])
        by_hash = [(False, to_db(i.content_hash), kind_ids[i.kind])
                   for i in insights if i.content_hash]
        by_path = [(False, i.library_id, i.rel_path, kind_ids[i.kind])
                   for i in insights if not i.content_hash]
        rows = stored_rows(store, insights, [json.dumps(i.value, ensure_ascii=False)
                                             for i in insights])
        store.executemany(_DEMOTE_BY_PATH, by_path)
        store.executemany(_DEMOTE_BY_HASH, by_hash)
        store.insert_rows(Insight, INSIGHT_COLUMNS, rows)
        store.record_changes(insight_changes(store, insights))


def stored_rows(store: Store, insights: Sequence[NewInsight], texts: Sequence[str]
                ) -> list[tuple]:
    """The `INSIGHT_COLUMNS` rows of new current insights whose value JSON is `texts[n]`,
    for `Store.insert_rows` (call inside the writing transaction: a label's id is only good
    in it)."""
    ids = labels.ids(store, [*(text for i, text in zip(insights, texts, strict=True)
                               if i.kind in LABELLED_KINDS),
                             *{i.kind for i in insights},
                             *{i.source for i in insights},
                             *{i.enricher_checksum for i in insights}])
    return [(i.content_hash, *located(i), ids[i.kind],
             *(("", ids[text]) if i.kind in LABELLED_KINDS else (text, None)),
             i.generated_at, True, ids[i.source], ids.get(i.enricher_checksum))
            for i, text in zip(insights, texts, strict=True)]


def located(insight: NewInsight) -> tuple[int | None, bytes | None]:
    """The (library_id, rel_path) an insight row stores: only while its content is not
    hashed (the NULL-hash fill and `insight show` look such rows up by path). A hashed row
    is found by its hash; its path would cost ~25 B a file and answer no query."""
    if insight.content_hash:
        return None, None
    return insight.library_id, insight.rel_path


def insight_changes(store: Store, insights: Sequence[NewInsight]) -> list[Change]:
    """`insight` changes, one per insight written, named by the file it was made from."""
    if not insights:
        return []
    names = dict(store.query("SELECT id, name FROM library"))
    details: dict[str, dict[str, str]] = {}  # one per kind: changes.flush encodes it once
    return [Change(feed.INSIGHT, names.get(i.library_id),
                   None if i.rel_path is None else i.rel_path.decode("utf-8", "backslashreplace"),
                   i.content_hash, details.setdefault(i.kind, {"insight_kind": i.kind}))
            for i in insights]


def set_user_insight(store: Store, file: IndexedFile, kind: str, value_json: str) -> None:
    """`insight set PATH KIND JSON`."""
    if not KIND_RE.match(kind):
        raise UsageError(f"insight kind {kind!r}: use letters, digits and _ . : / -")
    try:
        value = json.loads(value_json)
    except json.JSONDecodeError as exc:
        raise UsageError(f"insight value is not valid JSON: {exc}") from None
    record_insight(
        store, content_hash=file.content_hash, library_id=file.library_id,
        rel_path=file.rel_path, kind=kind, value=value, source=USER_SOURCE,
    )


def file_insights(store: Store, file: IndexedFile, *, history: bool) -> list[dict[str, Any]]:
    """The file's insights (by its hash, and by its path while unhashed), current first."""
    where = "(content_hash IS NULL AND library_id = ? AND rel_path = ?)"
    params: list[Any] = [file.library_id, file.rel_path]
    if file.content_hash is not None:
        where = f"(content_hash = ? OR {where})"
        params.insert(0, to_db(file.content_hash))
    if not history:
        where += " AND is_current"
    rows = store.query(
        f"SELECT {labels.insight_kind('insight')} AS kind_text, {labels.insight_value('insight')},"
        f" generated_at, is_current,"
        f" (SELECT text FROM {labels.TABLE} WHERE id = source_label) FROM insight"
        f" WHERE {where} ORDER BY kind_text, is_current DESC, generated_at DESC, id DESC",
        params,
    )
    return [
        {"kind": kind, "value": json.loads(value), "generated_at": iso_utc(generated_at),
         "is_current": bool(is_current), "source": source}
        for kind, value, generated_at, is_current, source in rows
    ]
