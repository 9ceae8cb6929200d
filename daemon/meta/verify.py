"""`verify`: re-read hashed files whose size and mtime are unchanged, and compare hashes.

A file whose size or mtime differ from its row was changed on purpose; the next scan handles
it. One whose stat is the same but whose bytes hash differently has rotted (or was rewritten
with its mtime put back): that is a mismatch. The stored hash is never rewritten, so a
mismatch keeps being reported until the file is restored or rescanned after a real change.

`compare_file` is the one comparison, shared with the daemon's scheduled verify
(service/scheduled_verify.py); both record each mismatch as a `corrupt` change.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from enum import Enum
from typing import Any, assert_never

from daemon.config import Config
from daemon.errors import describe_os_error
from daemon.libraries import select_libraries
from daemon.scan.apply import path_text
from daemon.scan.hash import TornReadError, hash_file
from daemon.scan.probe import probe
from daemon.store import Store, changes, queries
from daemon.store.hashes import from_db


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
            return Compared(Outcome.SKIPPED)
        hashed = hash_file(path, follow_symlinks=follow_symlinks, on_bytes=on_bytes)
    except (FileNotFoundError, TornReadError):
        return Compared(Outcome.SKIPPED)
    except OSError as exc:
        return Compared(Outcome.FAILED, describe_os_error(exc))
    if (hashed.size, hashed.mtime_ns) != stat_key:
        return Compared(Outcome.SKIPPED)
    if hashed.content_hash != expected:
        return Compared(Outcome.MISMATCH, hashed.content_hash)
    return Compared(Outcome.SAME)


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
        if row is None:
            continue
        root = os.fsencode(library.path)
        rows = store.query(
            "SELECT rel_path, size, mtime_ns, content_hash FROM file WHERE library_id = ?"
            " AND NOT is_missing AND content_hash IS NOT NULL ORDER BY rel_path",
            [row.id],
        )
        for rel_path, size, mtime_ns, digest in rows:
            rel_path, expected = bytes(rel_path), from_db(digest)
            compared = compare_file(root, rel_path, (size, mtime_ns), expected,
                                    follow_symlinks=library.follow_symlinks)
            _tally(report, library.name, rel_path, expected, compared)
    if report.mismatches:
        record_corrupt(store, report.mismatches)
    return report


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
