"""`dupes`: groups of present files that share a content hash, or (`--similar`) a picture."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from daemon.errors import UsageError
from daemon.scan.apply import path_text
from daemon.store import Store, labels, queries
from daemon.store.hashes import from_db


@dataclass
class DupeGroup:
    """Files sharing one content hash; `files` holds (library, rel_path bytes)."""

    content_hash: str
    size: int
    files: list[tuple[str, bytes]] = field(default_factory=list)

    def as_json(self) -> dict[str, Any]:
        return {"hash": self.content_hash, "size": self.size,
                "files": [{"library": library, "path": path_text(rel_path)}
                          for library, rel_path in self.files]}


def duplicate_groups(store: Store, library: str | None = None) -> Iterator[DupeGroup]:
    """Largest files first. With `library`, only that library's files are compared."""
    library_id = _library_id(library)
    cursor = store.stream(
        "SELECT f.content_hash, f.size, l.name, f.rel_path FROM file f"
        " JOIN library l ON l.id = f.library_id"
        " WHERE NOT f.is_missing AND (? IS NULL OR f.library_id = ?) AND f.content_hash IN ("
        "  SELECT content_hash FROM file WHERE NOT is_missing AND content_hash IS NOT NULL"
        "  AND (? IS NULL OR library_id = ?) GROUP BY content_hash HAVING COUNT(*) > 1)"
        " ORDER BY f.size DESC, f.content_hash, l.name, f.rel_path",
        [library_id] * 4,
    )
    group: DupeGroup | None = None
    for digest, size, name, rel_path in cursor:
        content_hash = from_db(digest)
        if group is None or group.content_hash != content_hash:
            if group is not None:
                yield group
            group = DupeGroup(content_hash, size)
        group.files.append((name, bytes(rel_path)))
    if group is not None:
        yield group


def similar_groups(store: Store, library: str | None, distance: int) -> list[dict[str, Any]]:
    """Present images whose perceptual hashes differ in at most `distance` bits, grouped.

    Across libraries unless `library` is given. Copies with the same content hash are in the
    same group (distance 0). Groups with the most files first; files by library and path.
    """
    import numpy as np

    from daemon.meta.similar import HASH_BITS, groups

    if not 0 <= distance <= HASH_BITS:
        raise UsageError(f"--distance must be between 0 and {HASH_BITS}, got {distance}")
    library_id = _library_id(library)
    rows = store.query(
        f"SELECT {labels.insight_value('i')}, f.content_hash, l.name, f.rel_path FROM insight i"
        " JOIN file f ON f.content_hash = i.content_hash JOIN library l ON l.id = f.library_id"
        f" WHERE {labels.insight_kind_is('i')} AND i.is_current AND NOT f.is_missing"
        " AND (? IS NULL OR f.library_id = ?)",
        ["phash", library_id, library_id],
    )
    by_phash: dict[int, list[dict[str, str]]] = {}
    for value, digest, name, rel_path in rows:
        phash = _phash_value(value)
        if phash is not None:
            by_phash.setdefault(phash, []).append({
                "library": name, "path": path_text(bytes(rel_path)), "hash": from_db(digest),
                "phash": f"{phash:016x}",
            })
    phashes = list(by_phash)
    clusters = [[phashes[i] for i in group]
                for group in groups(np.array(phashes, dtype=np.uint64), distance)]
    grouped = {p for cluster in clusters for p in cluster}
    clusters += [[p] for p, files in by_phash.items() if len(files) > 1 and p not in grouped]
    found = []
    for cluster in clusters:
        files = sorted((f for p in cluster for f in by_phash[p]),
                       key=lambda f: (f["library"], f["path"]))
        found.append({"files": files})
    return sorted(found, key=lambda g: (-len(g["files"]), g["files"][0]["library"],
                                        g["files"][0]["path"]))


def _phash_value(value: str) -> int | None:
    try:
        return int(json.loads(value)["phash"], 16)
    except (ValueError, KeyError, TypeError):
        return None  # an error insight, or a user's value of another shape


def _library_id(library: str | None) -> int | None:
    if library is None:
        return None
    row = queries.get_library(library)
    if row is None:
        raise UsageError(f"unknown library {library!r}")
    return row.id
