"""The indexed file a CLI path names: what `tag` and `insight` attach metadata to."""

from __future__ import annotations

import os
import stat
from typing import NamedTuple

from daemon.config import Config, LibraryConfig
from daemon.errors import UsageError
from daemon.libraries import resolve_path
from daemon.scan.filters import ExcludeMatcher
from daemon.scan.probe import probe
from daemon.store import Store
from daemon.store.hashes import from_db
from daemon.store.paths import shown


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
        raise UsageError(f"{path}: {why_not_indexed(library, rel_path)}")
    library_id, path_text, content_hash, is_missing = rows[0]
    return IndexedFile(library_id, library.name, rel_path, shown(rel_path, path_text),
                       from_db(content_hash),
                       bool(is_missing))


def why_not_indexed(library: LibraryConfig, rel_path: bytes) -> str:
    """Why a path has no row, and the way out: `assetd scan` only where a scan would help."""
    where = f"library {library.name!r}"
    probed = probe(library)
    if not probed.online:
        return f"not in the index, and {where} is offline ({probed.reason})"
    absolute = os.path.join(os.fsencode(library.path), rel_path)
    try:
        st = os.stat(absolute, follow_symlinks=library.follow_symlinks)
    except FileNotFoundError:
        return "no such file, and not in the index"
    except OSError as exc:
        return f"not in the index, and it cannot be read ({exc.strerror or exc})"
    if stat.S_ISLNK(st.st_mode):
        return f"a symbolic link, and {where} does not follow symlinks (follow_symlinks)"
    if stat.S_ISDIR(st.st_mode):
        return "a directory: tags and insights belong to files (`assetd files DIR` lists them)"
    if not stat.S_ISREG(st.st_mode):
        return "not a regular file: assetd indexes regular files only"
    if ExcludeMatcher(library.exclude).excluded_anywhere(rel_path):
        return f"excluded by the exclude patterns of {where}"
    return f"not indexed yet: run `assetd scan --path {os.fsdecode(absolute)}` first"
