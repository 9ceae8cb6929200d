"""The `file_content_hash` index during an index's first scan (store/deferred_indexes.py): left out
while the first scan of an empty index inserts its rows, built at its end, whether it ends or
fails, and built by the next `scan` or `run` where a first scan never got to its end."""

from __future__ import annotations

import subprocess
import sys
import time

import pytest

from daemon.config import load_config
from daemon.scan import scanner
from daemon.scan.progress import Progress
from daemon.scan.scanner import ScanOptions, scan_library
from daemon.store import Store, deferred_indexes
from tests.conftest import REPO_ROOT


class IndexSeen(Progress):
    """Whether the index exists, looked at between the scan's parts."""

    def __init__(self, store, stop_after: int | None = None):
        self.store, self.seen, self.stop_after = store, [], stop_after

    def discovered(self, library: str, files: int) -> None:
        self.seen.append(deferred_indexes.exists(self.store))
        if self.stop_after is not None and len(self.seen) > self.stop_after:
            raise KeyboardInterrupt


def scan(env, store, library=0, progress=None):
    config = load_config(str(env.config_path))
    return scan_library(store, config, config.libraries[library], options=ScanOptions(),
                        progress=progress)


def plan_of_lookup_by_hash(store) -> str:
    """(PostgreSQL would read a table this small whole, index or not: it is told not to.)"""
    lookup = "SELECT id FROM file WHERE content_hash = ?"
    if store.is_sqlite:
        rows = store.query(f"EXPLAIN QUERY PLAN {lookup}", [b"\0" * 16])
    else:
        with store.write_tx():
            store.execute("SET LOCAL enable_seqscan = off")
            rows = store.query(f"EXPLAIN {lookup}", [b"\0" * 16])
    return " ".join(str(value) for row in rows for value in row)


def test_a_first_scan_builds_the_index_after_its_rows(env, store, monkeypatch):
    monkeypatch.setattr(scanner, "PART_FILES", 3)
    env.library("photos", {f"d/f{i}.txt": f"file {i}" for i in range(10)})
    progress = IndexSeen(store)
    result = scan(env, store, progress=progress)
    assert result.stats["created"] == 10
    assert progress.seen[1:] and not any(progress.seen[1:])  # left out while parts came in
    assert deferred_indexes.exists(store)
    assert deferred_indexes.NAME in plan_of_lookup_by_hash(store)


def test_a_scan_into_an_index_that_has_files_keeps_the_index(env, store):
    env.library("photos", {"a.txt": "a"})
    env.library("music", {f"m{i}.txt": f"song {i}" for i in range(5)})
    scan(env, store, library=0)
    progress = IndexSeen(store)
    scan(env, store, library=1, progress=progress)  # a new library, but not a new index
    assert progress.seen and all(progress.seen)
    assert deferred_indexes.exists(store)


def test_a_first_scan_of_several_libraries_builds_the_index_after_them_all(env, store):
    env.library("photos", {f"p{i}.txt": f"photo {i}" for i in range(4)})
    env.library("music", {f"m{i}.txt": f"song {i}" for i in range(4)})
    progress = IndexSeen(store)
    config = load_config(str(env.config_path))
    report = scanner.scan(store, config, [], [], progress=progress)
    assert [library.stats["created"] for library in report.libraries] == [4, 4]
    assert len(progress.seen) >= 2 and not any(progress.seen)  # the second library's too
    assert deferred_indexes.exists(store)


def test_a_first_scan_that_stops_builds_the_index_on_its_way_out(env, store, monkeypatch):
    monkeypatch.setattr(scanner, "PART_FILES", 2)
    env.library("photos", {f"f{i}.txt": f"file {i}" for i in range(8)})
    progress = IndexSeen(store, stop_after=2)
    with pytest.raises(KeyboardInterrupt):
        scan(env, store, progress=progress)
    assert progress.seen[-1] is False  # it was out when the stop came
    assert deferred_indexes.exists(store)
    # The parts applied before the stop are kept, and found by hash again.
    assert store.query("SELECT count(*) FROM file")[0][0] > 0


def test_the_next_scan_or_run_builds_an_index_a_killed_first_scan_left_out(env, db_url):
    env.library("photos", {"a.txt": "a"})
    first = Store(db_url)
    scan(env, first)
    with first.write_tx():
        first.execute(f"DROP INDEX {deferred_indexes.NAME}")  # as a first scan killed mid-way
    first.close()
    reader = Store(db_url, create=False)  # `status`, `files`: they read, they build nothing
    assert not deferred_indexes.exists(reader)
    reader.close()
    opened = Store(db_url)  # what `scan` and `run` open
    try:
        assert deferred_indexes.exists(opened)
    finally:
        opened.close()


def test_two_processes_that_find_the_index_missing_build_it_once(env, db_url):
    """PostgreSQL fails the second of two concurrent CREATE INDEX IF NOT EXISTS on its
    catalog's unique name: `ensure` asks again under a lock, so the second finds it built."""
    env.library("photos", {"a.txt": "a"})
    first = Store(db_url)
    scan(env, first)
    with first.write_tx():
        first.execute(f"DROP INDEX {deferred_indexes.NAME}")
    opener = None
    try:
        with first.write_tx():  # this process builds it, and holds its transaction open
            first.lock(deferred_indexes.NAME)
            first.execute(f"CREATE INDEX {deferred_indexes.NAME} ON file (content_hash)")
            opener = subprocess.Popen(
                [sys.executable, "-c", "import sys\nfrom daemon.store import Store\n"
                 "Store(sys.argv[1]).close()", db_url],
                cwd=REPO_ROOT, stderr=subprocess.PIPE, text=True)
            time.sleep(0.5)  # the other process finds it missing and waits
            assert opener.poll() is None
        _, stderr = opener.communicate(timeout=30)
        assert opener.returncode == 0, stderr
    finally:
        if opener is not None and opener.poll() is None:
            opener.kill()
        first.close()
