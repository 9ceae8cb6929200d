"""Backfill hashing of NULL-hash files (daemon/scan/backfill.py), on both backends."""

from __future__ import annotations

import dataclasses
import os

import pytest

from daemon.config import Config, DaemonConfig, LibraryConfig, empty_config
from daemon.scan import backfill as backfill_module
from daemon.scan.backfill import Backfill
from daemon.scan.hash import hash_file
from daemon.scan.scanner import ScanOptions, scan_library
from daemon.store import queries
from daemon.store.hashes import from_db
from daemon.store.models import STATE_NAMES
from tests.conftest import write_tree


def unhashed_library(store, tmp_path, files: dict[str, str]):
    """A library scanned with --no-hash: every file is indexed with a NULL hash."""
    root = tmp_path / "lib"
    root.mkdir()
    write_tree(root, files)
    library = LibraryConfig(name="photos", path=str(root))
    scan_library(store, config_of(store, library), library, options=ScanOptions(hash_files=False))
    return root, library, queries.get_library("photos").id


def config_of(store, library: LibraryConfig) -> Config:
    return dataclasses.replace(empty_config(store.url), libraries=(library,),
                               daemon=DaemonConfig(database=store.url, host="test"))


def file_rows(store) -> dict[str, tuple]:
    return {
        bytes(rel).decode(): (from_db(content_hash), STATE_NAMES[state])
        for rel, content_hash, state in store.query(
            "SELECT rel_path, content_hash, state FROM file"
        )
    }


def test_hashes_null_hash_files_and_keeps_their_state(store, tmp_path):
    root, library, library_id = unhashed_library(store, tmp_path, {"a.jpg": "a", "d/b.jpg": "b"})

    result = Backfill(store).run(library, library_id, budget_s=10)

    assert (result.hashed, result.deferred, result.errors, result.exhausted) == (2, 0, 0, True)
    rows = file_rows(store)
    assert rows["a.jpg"] == (hash_file(root / "a.jpg").content_hash, "new")
    assert rows["d/b.jpg"] == (hash_file(root / "d" / "b.jpg").content_hash, "new")


def test_a_file_changed_since_indexed_is_left_to_the_next_scan(store, tmp_path):
    root, library, library_id = unhashed_library(store, tmp_path, {"a.jpg": "a", "b.jpg": "b"})
    (root / "a.jpg").write_text("edited after the scan")

    result = Backfill(store).run(library, library_id, budget_s=10)

    assert (result.hashed, result.deferred) == (1, 1)
    assert file_rows(store)["a.jpg"] == (None, "new")


def test_missing_and_unreadable_files_are_skipped(store, tmp_path):
    root, library, library_id = unhashed_library(store, tmp_path, {"a.jpg": "a", "b.jpg": "b"})
    os.unlink(root / "b.jpg")
    scan_library(store, config_of(store, library), library)  # marks b.jpg missing, hashes a
    store.execute("UPDATE file SET content_hash = NULL")
    os.mkfifo(root / "fifo-in-place-of-a")
    os.rename(root / "fifo-in-place-of-a", root / "a.jpg")

    result = Backfill(store).run(library, library_id, budget_s=10)

    assert (result.hashed, result.errors) == (0, 1), "a.jpg is no regular file any more"


def test_successive_runs_walk_the_files_round_robin(store, tmp_path, monkeypatch):
    files = {f"{i}.jpg": str(i) for i in range(3)}
    _, library, library_id = unhashed_library(store, tmp_path, files)
    ticks = iter(range(10_000))
    # Every clock read is one second later: a 2.5 s budget hashes exactly one file.
    monkeypatch.setattr(backfill_module.time, "monotonic", lambda: float(next(ticks)))
    backfill = Backfill(store)

    hashed_per_run = []
    for _ in range(3):
        backfill.run(library, library_id, budget_s=2.5)
        hashed_per_run.append(sorted(k for k, (h, _) in file_rows(store).items() if h))
    assert hashed_per_run == [["0.jpg"], ["0.jpg", "1.jpg"], ["0.jpg", "1.jpg", "2.jpg"]]


def test_on_bytes_may_abort_after_writing_what_is_done(store, tmp_path):
    _, library, library_id = unhashed_library(store, tmp_path, {"a.jpg": "a", "b.jpg": "b"})
    calls = []

    def abort_on_second_file(_n: int) -> None:
        calls.append(_n)
        if len(calls) == 2:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        Backfill(store).run(library, library_id, budget_s=10, on_bytes=abort_on_second_file)
    assert sum(1 for h, _ in file_rows(store).values() if h) == 1
