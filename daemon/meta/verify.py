"""`verify`: re-read hashed files whose size and mtime are unchanged, and compare hashes.

A file whose size or mtime differ from its row was changed on purpose; the next scan handles
it. One whose stat is the same but whose bytes hash differently has rotted (or was rewritten
with its mtime put back): that is a mismatch. The stored hash is never rewritten, so a
mismatch keeps being reported until the file is restored or rescanned after a real change.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any

from daemon.config import Config
from daemon.errors import describe_os_error
from daemon.libraries import select_libraries
from daemon.scan.apply import path_text
from daemon.scan.hash import TornReadError, hash_file
from daemon.scan.probe import probe
from daemon.store import Store, queries


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
        for rel_path, size, mtime_ns, expected in rows:
            _check(report, library.name, root, bytes(rel_path), (size, mtime_ns), expected,
                   library.follow_symlinks)
    return report


def _check(report: VerifyReport, library: str, root: bytes, rel_path: bytes,
           stat_key: tuple[int, int], expected: str, follow_symlinks: bool) -> None:
    path = root + b"/" + rel_path
    try:
        st = os.stat(path, follow_symlinks=follow_symlinks)
        if (st.st_size, st.st_mtime_ns) != stat_key:
            return  # changed on purpose since it was indexed: the scan's business
        hashed = hash_file(path, follow_symlinks=follow_symlinks)
    except (FileNotFoundError, TornReadError):
        return  # gone or being written: also the scan's business, not rot
    except OSError as exc:
        report.errors.append(VerifyError(library, rel_path, describe_os_error(exc)))
        return
    if (hashed.size, hashed.mtime_ns) != stat_key:
        return
    report.checked += 1
    if hashed.content_hash != expected:
        report.mismatches.append(Mismatch(library, rel_path, expected, hashed.content_hash))
