"""`dupes`: groups of present files that share a content hash."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from daemon.errors import UsageError
from daemon.scan.apply import path_text
from daemon.store import Store, queries


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
    library_id = None
    if library is not None:
        row = queries.get_library(library)
        if row is None:
            raise UsageError(f"unknown library {library!r}")
        library_id = row.id
    cursor = store.execute(
        "SELECT f.content_hash, f.size, l.name, f.rel_path FROM file f"
        " JOIN library l ON l.id = f.library_id"
        " WHERE NOT f.is_missing AND (? IS NULL OR f.library_id = ?) AND f.content_hash IN ("
        "  SELECT content_hash FROM file WHERE NOT is_missing AND content_hash IS NOT NULL"
        "  AND (? IS NULL OR library_id = ?) GROUP BY content_hash HAVING COUNT(*) > 1)"
        " ORDER BY f.size DESC, f.content_hash, l.name, f.rel_path",
        [library_id] * 4,
    )
    group: DupeGroup | None = None
    for content_hash, size, name, rel_path in cursor:
        if group is None or group.content_hash != content_hash:
            if group is not None:
                yield group
            group = DupeGroup(content_hash, size)
        group.files.append((name, bytes(rel_path)))
    if group is not None:
        yield group
