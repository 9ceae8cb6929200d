"""Tags follow the bytes.

A tag row is (library, rel_path, content_hash, tag). A file carries every tag whose
content_hash equals its own, so a moved or copied file keeps its tags across libraries and
hosts, plus the tags set on its path while its hash was still unknown (content_hash NULL;
the NULL-hash fill pass gives them the hash once it is known).
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field

from daemon.store import Store


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
                index.by_hash[content_hash].add(tag)
        return index

    def for_file(self, library_id: int, rel_path: bytes, content_hash: str | None) -> list[str]:
        tags = set(self.by_path.get((library_id, rel_path), ()))
        if content_hash is not None:
            tags |= self.by_hash.get(content_hash, set())
        return sorted(tags)
