"""The indexed file a CLI path names: what `tag` and `insight` attach metadata to."""

from __future__ import annotations

from typing import NamedTuple

from daemon.config import Config
from daemon.errors import UsageError
from daemon.libraries import resolve_path
from daemon.store import Store


class IndexedFile(NamedTuple):
    library_id: int
    library: str
    rel_path: bytes
    path_text: str
    content_hash: str | None
    is_missing: bool


def find_file(store: Store, config: Config, path: str) -> IndexedFile:
    """The file row for a filesystem path; UsageError (exit 2) when there is none."""
    library, rel_path = resolve_path(config, path)
    rows = store.query(
        "SELECT l.id, f.path_text, f.content_hash, f.is_missing FROM file f"
        " JOIN library l ON l.id = f.library_id WHERE l.name = ? AND f.rel_path = ?",
        [library.name, rel_path],
    )
    if not rows:
        raise UsageError(
            f"{path}: not an indexed file of library {library.name!r} "
            f"(run `assetd scan {library.name}` first)"
        )
    library_id, path_text, content_hash, is_missing = rows[0]
    return IndexedFile(library_id, library.name, rel_path, path_text, content_hash,
                       bool(is_missing))
