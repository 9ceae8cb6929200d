"""Tags follow the bytes.

A tag row is (library, rel_path, content_hash, tag). A file carries every tag whose
content_hash equals its own, so a moved or copied file keeps its tags across libraries and
hosts, plus the tags set on its path while its hash was still unknown (content_hash NULL;
the NULL-hash fill pass gives them the hash once it is known).
"""

from __future__ import annotations

import time
from collections import defaultdict
from dataclasses import dataclass, field

from daemon.errors import UsageError
from daemon.meta.indexed import IndexedFile
from daemon.store import Store
from daemon.store import changes as feed
from daemon.store.changes import Change
from daemon.store.hashes import from_db, to_db


@dataclass
class TagIndex:
    """All tags in memory, for listing many files at once."""

    by_hash: dict[str, set[str]] = field(default_factory=lambda: defaultdict(set))
    by_path: dict[tuple[int, bytes], set[str]] = field(default_factory=lambda: defaultdict(set))

    @classmethod
    def load(cls, store: Store) -> TagIndex:
        index = cls()
        for library_id, rel_path, content_hash, tag in store.query(
            "SELECT library_id, rel_path, content_hash, tag FROM tag"
        ):
            if content_hash is None:
                index.by_path[(library_id, bytes(rel_path))].add(tag)
            else:
                index.by_hash[from_db(content_hash)].add(tag)
        return index

    def for_file(self, library_id: int, rel_path: bytes, content_hash: str | None) -> list[str]:
        tags = set(self.by_path.get((library_id, rel_path), ()))
        if content_hash is not None:
            tags |= self.by_hash.get(content_hash, set())
        return sorted(tags)


def check_tag(tag: str) -> str:
    if not tag or tag != tag.strip() or any(ch in tag for ch in "\r\n\t"):
        raise UsageError(f"tag {tag!r}: must be non-empty, without surrounding spaces or newlines")
    return tag


def _carried_condition(file: IndexedFile) -> tuple[str, list]:
    """SQL for "this tag row belongs to the file": its content, or its path while unhashed."""
    sql = "(content_hash IS NULL AND library_id = ? AND rel_path = ?)"
    params: list = [file.library_id, file.rel_path]
    if file.content_hash is not None:
        sql = f"(content_hash = ? OR {sql})"
        params.insert(0, to_db(file.content_hash))
    return sql, params


def file_tags(store: Store, file: IndexedFile) -> list[str]:
    where, params = _carried_condition(file)
    rows = store.query(f"SELECT DISTINCT tag FROM tag WHERE {where} ORDER BY tag", params)
    return [tag for (tag,) in rows]


def add_tags(store: Store, file: IndexedFile, tags: list[str]) -> list[str]:
    """Tag the file's content (its path while unhashed); returns the tags that were new."""
    wanted = list(dict.fromkeys(check_tag(t) for t in tags))
    now = time.time()
    with store.write_tx():
        have = set(file_tags(store, file))
        added = [tag for tag in wanted if tag not in have]
        store.executemany(
            "INSERT INTO tag (library_id, rel_path, content_hash, tag, created_at)"
            " VALUES (?, ?, ?, ?, ?)",
            [(file.library_id, file.rel_path, to_db(file.content_hash), tag, now)
             for tag in added],
        )
        store.record_changes(_tag_change(file, feed.TAGGED, tag) for tag in added)
    return added


def remove_tags(store: Store, file: IndexedFile, tags: list[str]) -> list[str]:
    """Untag the file's content: every row of (its hash, tag), and its NULL-hash path rows.

    Other files with the same bytes lose the tag too: a tag belongs to the content.
    """
    where, params = _carried_condition(file)
    removed = []
    with store.write_tx():
        for tag in dict.fromkeys(tags):
            cursor = store.execute(f"DELETE FROM tag WHERE tag = ? AND {where}", [tag, *params])
            if cursor.rowcount:
                removed.append(tag)
        store.record_changes(_tag_change(file, feed.UNTAGGED, tag) for tag in removed)
    return removed


def _tag_change(file: IndexedFile, kind: str, tag: str) -> Change:
    return Change(kind, file.library, file.path_text, file.content_hash, {"tag": tag})


def tag_counts(store: Store) -> list[dict]:
    """Every tag with the number of present files carrying it (what `files --tag` lists)."""
    rows = store.query(
        "SELECT tag, COUNT(DISTINCT file_id) FROM ("
        " SELECT t.tag, f.id AS file_id FROM tag t LEFT JOIN file f"
        "  ON f.content_hash = t.content_hash AND NOT f.is_missing"
        " UNION ALL"
        " SELECT t.tag, f.id AS file_id FROM tag t LEFT JOIN file f"
        "  ON t.content_hash IS NULL AND f.library_id = t.library_id"
        "  AND f.rel_path = t.rel_path AND NOT f.is_missing"
        ") carriers GROUP BY tag ORDER BY tag"
    )
    return [{"tag": tag, "files": int(count)} for tag, count in rows]


def content_carriers(store: Store, file: IndexedFile) -> tuple[int, int]:
    """(present, missing) indexed files carrying what a tag on `file` is attached to.

    Every file with its content hash (copies included, in any library); while the file is
    unhashed its tags are on its path, so just the file itself.
    """
    if file.content_hash is None:
        return (0, 1) if file.is_missing else (1, 0)
    rows = store.query(
        "SELECT SUM(CASE WHEN is_missing THEN 0 ELSE 1 END),"
        " SUM(CASE WHEN is_missing THEN 1 ELSE 0 END) FROM file WHERE content_hash = ?",
        [to_db(file.content_hash)],
    )
    present, missing = rows[0]
    return int(present or 0), int(missing or 0)
