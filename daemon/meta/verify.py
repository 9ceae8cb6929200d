"""`verify`: re-read hashed files whose size and mtime are unchanged, and compare hashes.

A file whose size or mtime differ from its row was changed on purpose; the next scan handles
it. One whose stat is the same but whose bytes hash differently has rotted (or was rewritten
with its mtime put back): that is a mismatch. The stored hash is never rewritten, so a
mismatch keeps being reported until the file is restored or rescanned after a real change.

`compare_file` is the one comparison, shared with the daemon's scheduled verify
(service/scheduled_verify.py); both record each mismatch as a `corrupt` change.

`assetd verify` reads the rows a page at a time (`VERIFY_PAGE_ROWS`, in rel_path order, each
page its own query: memory holds two pages, not the library; it held every row, 320 MB at a
million files) and hashes them on every core, in the scan's pool of hash workers
(scan/hashpool.py), one page read while the previous one is compared: at a million small files,
12 s on one core before. A file the pool could not read is compared again by `compare_file`,
which says whether it failed or was changed (replaced by a symlink, say: skipped).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from enum import Enum
from typing import Any, assert_never

from daemon.config import Config, LibraryConfig
from daemon.errors import describe_os_error
from daemon.libraries import select_libraries
from daemon.scan.apply import path_text
from daemon.scan.hash import FAILED, HASHED, Hashed, TornReadError, hash_file
from daemon.scan.hashpool import Hasher, Pending
from daemon.scan.probe import probe
from daemon.scan.walk import new_entry
from daemon.store import Store, changes, queries
from daemon.store.hashes import from_db

VERIFY_PAGE_ROWS = 10_000


@dataclass(frozen=True)
class Mismatch:
    """A file whose bytes changed behind an unchanged size and mtime."""

    library: str
    rel_path: bytes  # the exact name (human output escapes it unambiguously)
    expected: str
    actual: str

    def as_json(self) -> dict[str, Any]:
        return {"library": self.library, "path": path_text(self.rel_path),
                "expected": self.expected, "actual": self.actual}


@dataclass(frozen=True)
class VerifyError:
    """A file that could not be read, or (rel_path None) a library that was offline."""

    library: str
    rel_path: bytes | None
    error: str

    def as_json(self) -> dict[str, Any]:
        return {"library": self.library,
                "path": None if self.rel_path is None else path_text(self.rel_path),
                "error": self.error}


@dataclass
class VerifyReport:
    checked: int = 0
    mismatches: list[Mismatch] = field(default_factory=list)
    errors: list[VerifyError] = field(default_factory=list)
    offline: list[VerifyError] = field(default_factory=list)

    @property
    def status(self) -> str:
        return "mismatch" if self.mismatches else "ok"

    def as_json(self) -> dict[str, Any]:
        return {"status": self.status, "checked": self.checked,
                "mismatches": [m.as_json() for m in self.mismatches],
                "errors": [e.as_json() for e in self.errors + self.offline]}


class Outcome(Enum):
    SAME = "same"  # read in full, the stored hash
    MISMATCH = "mismatch"  # read in full, another hash behind the same size and mtime
    SKIPPED = "skipped"  # changed on purpose, gone, or being written: the scan's business
    FAILED = "failed"  # could not be read


@dataclass(frozen=True)
class Compared:
    outcome: Outcome
    detail: str = ""  # the hash read (MISMATCH) or the error (FAILED)


SAME = Compared(Outcome.SAME)  # one for every file read whole and found unchanged
SKIPPED = Compared(Outcome.SKIPPED)


def compare_file(root: bytes, rel_path: bytes, stat_key: tuple[int, int], expected: str, *,
                 follow_symlinks: bool,
                 on_bytes: Callable[[int], None] | None = None) -> Compared:
    """Re-read one file whose row says (size, mtime_ns) = `stat_key` and hash `expected`.

    The size and mtime are compared before reading (a changed file is not read at all) and
    again by the hash's torn-read guard, so a file written meanwhile is never a mismatch.
    """
    path = root + b"/" + rel_path
    try:
        st = os.stat(path, follow_symlinks=follow_symlinks)
        if (st.st_size, st.st_mtime_ns) != stat_key:
            return SKIPPED
        hashed = hash_file(path, follow_symlinks=follow_symlinks, on_bytes=on_bytes)
    except (FileNotFoundError, TornReadError):
        return SKIPPED
    except OSError as exc:
        return Compared(Outcome.FAILED, describe_os_error(exc))
    return _compare_hashed(hashed, stat_key, expected)


def record_corrupt(store: Store, mismatches: Sequence[Mismatch]) -> None:
    """One `corrupt` change per mismatch, in the caller's (or its own) write transaction.
    The stored hash stays: it is what the bytes should be."""
    with store.write_tx():
        store.record_changes(
            changes.Change(changes.CORRUPT, m.library, path_text(m.rel_path), m.expected,
                           {"actual": m.actual})
            for m in mismatches)


def verify(store: Store, config: Config, names: list[str]) -> VerifyReport:
    report = VerifyReport()
    for library in select_libraries(config, names):
        probed = probe(library)
        if not probed.online:
            report.offline.append(VerifyError(library.name, None, f"offline: {probed.reason}"))
            continue
        row = queries.get_library(library.name)
        if row is not None:
            _verify_library(store, library, row.id, report)
    if report.mismatches:
        record_corrupt(store, report.mismatches)
    return report


# One page: a library's present, hashed files after a rel_path, in rel_path order (the
# (library_id, rel_path) index).
_PAGE = ("SELECT rel_path, size, mtime_ns, content_hash FROM file WHERE library_id = ?"
         " AND rel_path > ? AND NOT is_missing AND content_hash IS NOT NULL"
         " ORDER BY rel_path LIMIT ?")


def _verify_library(store: Store, library: LibraryConfig, library_id: int,
                    report: VerifyReport) -> None:
    """Each page hashed in the pool while the previous one is compared."""
    hasher = Hasher(os.fsencode(library.path), library.follow_symlinks)
    pending: tuple[dict[bytes, str], Pending] | None = None
    try:
        for page in _pages(store, library_id):
            expected = {bytes(rel_path): from_db(digest) for rel_path, _, _, digest in page}
            submitted = expected, hasher.submit(
                [new_entry((bytes(rel_path), size, mtime_ns, 0, 0))
                 for rel_path, size, mtime_ns, _ in page])
            if pending is not None:
                _compare_page(report, library, hasher, *pending)
            pending = submitted
        if pending is not None:
            _compare_page(report, library, hasher, *pending)
    except BaseException:  # Ctrl-C, an error: what is still being read is not wanted
        hasher.close(abandon=True)
        raise
    hasher.close()


def _pages(store: Store, library_id: int) -> Iterator[list[tuple]]:
    after = b""  # no rel_path is empty
    while page := store.query(_PAGE, [library_id, after, VERIFY_PAGE_ROWS]):
        yield page
        after = bytes(page[-1][0])


def _compare_page(report: VerifyReport, library: LibraryConfig, hasher: Hasher,
                  expected: dict[bytes, str], pending: Pending) -> None:
    for entry, outcome, value, _ in hasher.results(pending, on_bytes=_ignore):
        stat_key = (entry.size, entry.mtime_ns)
        if outcome == HASHED:
            compared = _compare_hashed(value, stat_key, expected[entry.rel_path])
            if compared is SAME:  # the common case, without `_tally`'s match a file
                report.checked += 1
                continue
        elif outcome == FAILED:  # why, exactly as the daemon's verify would say
            compared = compare_file(hasher.root, entry.rel_path, stat_key,
                                    expected[entry.rel_path],
                                    follow_symlinks=library.follow_symlinks)
        else:  # vanished, or changed while read
            compared = SKIPPED
        _tally(report, library.name, entry.rel_path, expected[entry.rel_path], compared)


def _compare_hashed(hashed: Hashed, stat_key: tuple[int, int], expected: str) -> Compared:
    if (hashed.size, hashed.mtime_ns) != stat_key:
        return SKIPPED  # changed on purpose since it was indexed
    if hashed.content_hash != expected:
        return Compared(Outcome.MISMATCH, hashed.content_hash)
    return SAME


def _ignore(_: int) -> None:
    pass


def _tally(report: VerifyReport, library: str, rel_path: bytes, expected: str,
           compared: Compared) -> None:
    match compared.outcome:
        case Outcome.SAME:
            report.checked += 1
        case Outcome.MISMATCH:
            report.checked += 1
            report.mismatches.append(Mismatch(library, rel_path, expected, compared.detail))
        case Outcome.FAILED:
            report.errors.append(VerifyError(library, rel_path, compared.detail))
        case Outcome.SKIPPED:
            pass
        case _:
            assert_never(compared.outcome)
