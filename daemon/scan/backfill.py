"""Backfill: hash present files whose hash is still NULL, within a time budget.

A file gets a NULL hash when a scan saw it being written (the torn-read guard deferred it),
could not read it, or ran with `--no-hash`. The daemon's tick gives each library `hash_budget`
seconds of this. A file is hashed only if it still has the size, mtime_ns and inode the index
knows: one that changed is a new version for a scan to pick up (the watcher queued it), not
something to paper over here. The UPDATE repeats that condition, so a concurrent scan that
rewrote the row in the meantime wins. State stays as scan/apply left it (`new` for an
unhashed file); the hash is all that is filled in.

A cursor per library makes successive calls walk the NULL-hash files round-robin, so a few
files that can never be read do not eat every budget.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import dataclass

from daemon import logs
from daemon.config import LibraryConfig
from daemon.errors import describe_os_error
from daemon.scan.apply import path_text
from daemon.scan.hash import Hashed, TornReadError, hash_file
from daemon.store import Store
from daemon.store import changes as feed
from daemon.store.changes import Change
from daemon.store.hashes import from_db, to_db
from daemon.store.paths import shown

FETCH_ROWS = 500
WRITE_BATCH_ROWS = 200

# `+library_id`: SQLite then takes the content_hash index (the NULLs: the backlog) instead of
# the library's, which read every file of a million-file library each tick (0.25 s) to find
# none unhashed.
_CANDIDATES = (
    "SELECT id, rel_path, size, mtime_ns, inode FROM file"
    " WHERE content_hash IS NULL AND +library_id = ? AND NOT is_missing AND id > ?"
    " ORDER BY id LIMIT ?"
)
_SET_HASH = (
    "UPDATE file SET content_hash = ?"
    " WHERE id = ? AND content_hash IS NULL AND size = ? AND mtime_ns = ? AND inode = ?"
)


@dataclass
class BackfillResult:
    hashed: int = 0
    deferred: int = 0  # changed since indexed, or changed while read: a later scan's job
    errors: int = 0
    exhausted: bool = False  # every NULL-hash file was visited (the cursor wrapped)


class Backfill:
    """Round-robin hashing of a library's NULL-hash files; one instance per daemon."""

    def __init__(self, store: Store):
        self._store = store
        self._after_id: dict[int, int] = {}

    def run(
        self,
        library: LibraryConfig,
        library_id: int,
        *,
        budget_s: float,
        on_bytes: Callable[[int], None] | None = None,
    ) -> BackfillResult:
        """Hash until the budget is spent (checked between files) or every file was visited.

        `on_bytes` is called per chunk read (progress; it may raise to abort: the hashes of
        the files finished so far are written first).
        """
        deadline = time.monotonic() + budget_s
        result = BackfillResult()
        root = os.fsencode(library.path)
        log = logs.get_logger().bind(library=library.name)
        pending: list[tuple] = []
        try:
            while time.monotonic() < deadline:
                after_id = self._after_id.get(library_id, 0)
                rows = self._store.query(_CANDIDATES, (library_id, after_id, FETCH_ROWS))
                if not rows:
                    self._after_id[library_id] = 0
                    result.exhausted = True
                    break
                for row_id, rel_path, size, mtime_ns, inode in rows:
                    if time.monotonic() >= deadline:
                        break
                    self._after_id[library_id] = row_id
                    hashed = self._hash_one(root, bytes(rel_path), (size, mtime_ns, inode),
                                            library, result, on_bytes, log)
                    if hashed is not None:
                        pending.append((to_db(hashed.content_hash), row_id, size, mtime_ns,
                                        inode))
                    if len(pending) >= WRITE_BATCH_ROWS:
                        self._write(library.name, pending)
                else:
                    if len(rows) < FETCH_ROWS:
                        self._after_id[library_id] = 0
                        result.exhausted = True
                        break
        finally:
            self._write(library.name, pending)
        return result

    def _hash_one(self, root, rel_path, known, library, result, on_bytes, log) -> Hashed | None:
        path = root + b"/" + rel_path
        try:
            hashed = hash_file(path, follow_symlinks=library.follow_symlinks, on_bytes=on_bytes)
        except TornReadError:
            result.deferred += 1
            log.debug("backfill.deferred", path=path_text(rel_path), why="changed while read")
            return None
        except OSError as exc:
            result.errors += 1
            log.debug("backfill.error", path=path_text(rel_path),
                      error=describe_os_error(exc))
            return None
        if (hashed.size, hashed.mtime_ns, hashed.inode) != known:
            result.deferred += 1
            log.debug("backfill.deferred", path=path_text(rel_path), why="changed since indexed")
            return None
        result.hashed += 1
        log.debug("backfill.hashed", path=path_text(rel_path), hash=hashed.content_hash)
        return hashed

    def _write(self, library: str, pending: list[tuple]) -> None:
        if pending:
            store = self._store
            with store.write_tx():
                store.executemany(_SET_HASH, pending)
                # The hash became known: an `updated` in the feed, for the rows the guarded
                # UPDATE did change (a row rewritten meanwhile kept its own).
                wanted = {row_id: digest for digest, row_id, *_ in pending}
                store.record_changes(
                    Change(feed.UPDATED, library, shown(rel_path, text), from_db(digest))
                    for row_id, rel_path, text, digest in store.query(
                        "SELECT id, rel_path, path_text, content_hash FROM file WHERE id IN ("
                        + ", ".join("?" for _ in wanted) + ")", list(wanted))
                    if digest is not None and bytes(digest) == wanted[row_id])
            pending.clear()
