"""A whole library that vanishes (a share mounted empty, a disk that failed to mount) costs
the scan a few bytes a row, not the row: it held every vanished row until its end, 866 MB
at a million files, in the daemon at every scan of such a library."""

from __future__ import annotations

import os
import tracemalloc

import pytest

from daemon.config import load_config
from daemon.scan import scanner
from daemon.scan.scanner import ScanOptions, scan_library
from daemon.store import changes, queries

FILES = 30_000


@pytest.fixture(scope="module")
def tree(tmp_path_factory):
    root = tmp_path_factory.mktemp("tree")
    for d in range(30):
        os.mkdir(root / f"d{d:02d}")
        for i in range(FILES // 30):
            with open(root / f"d{d:02d}" / f"f{i:04d}", "wb") as f:
                f.write(b"%d/%d" % (d, i))
    return root


def traced_peak_bytes(run) -> tuple[object, int]:
    tracemalloc.start()
    try:
        result = run()
        return result, tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


@pytest.mark.parametrize("allow", [False, True], ids=["guard-trips", "allowed"])
def test_a_vanished_library_is_held_by_id(env, store, tree, allow):
    root = env.library("nas", path=str(env.tmp_path / "nas"))
    config = load_config(str(env.config_path))
    library = config.libraries[0]
    subdirs = os.listdir(tree)
    for name in subdirs:  # the shared tree, lent to this library for its first scan
        os.rename(tree / name, root / name)
    try:
        scan_library(store, config, library, options=ScanOptions(hash_files=False))
    finally:
        for name in subdirs:  # and taken back: the library is mounted empty
            os.rename(root / name, tree / name)

    result, peak = traced_peak_bytes(lambda: scan_library(
        store, config, library, options=ScanOptions(allow_mass_missing=allow)))

    # Held by id: 8 B and a bit a row, and a page of rows at a time (5,000: ~100 B a row
    # here, a constant). Held whole, 500-700 B a row.
    assert peak < 250 * FILES, f"{peak / FILES:.0f} B a vanished row"
    row = queries.get_library("nas")
    if allow:
        assert result.online and result.stats["missing"] == FILES
        assert queries.count_present(row.id) == 0
        feed = changes.read(store).rows
        missing = [c.path for c in feed if c.kind == "missing"]
        assert missing == sorted(missing) and len(missing) == FILES  # in path order
    else:
        assert not result.online and f"{FILES} of {FILES} indexed" in result.reason
        assert queries.count_present(row.id) == FILES


MOVED_FILES = 6_000
MOVE_PART = 500


def test_a_large_move_is_written_a_part_at_a_time(env, store, tmp_path, monkeypatch):
    """A rescan after a whole folder moved holds each move until its end (both halves must
    be seen): ~700 B a move here. Writing them all in one statement set held as much again
    (their parameters, their changes for the feed); a part at a time holds a part's."""
    root = env.library("photos", path=str(tmp_path / "photos"))
    old = root / "2019"
    os.mkdir(old)
    for i in range(MOVED_FILES):
        with open(old / f"img{i:05d}.jpg", "wb") as f:
            f.write(b"%d" % i)
    config = load_config(str(env.config_path))
    library = config.libraries[0]
    scan_library(store, config, library, options=ScanOptions(hash_files=False))
    os.mkdir(root / "archive")
    os.rename(old, root / "archive" / "2019")
    monkeypatch.setattr(scanner, "PART_FILES", MOVE_PART)

    result, peak = traced_peak_bytes(lambda: scan_library(
        store, config, library, options=ScanOptions(hash_files=False)))

    assert result.stats["moved"] == MOVED_FILES and result.stats["missing"] == 0
    assert peak < 1_400 * MOVED_FILES, f"{peak / MOVED_FILES:.0f} B a moved file"
    feed = [c for c in changes.read(store).rows if c.kind == "moved"]
    assert [c.path for c in feed] == sorted(f"archive/2019/img{i:05d}.jpg"
                                            for i in range(MOVED_FILES))
    assert all(c.detail["old_path"] == c.path.removeprefix("archive/") for c in feed)
