"""scan_library in-process, with files changing under it while it runs (real files, real DB)."""

from __future__ import annotations

import os
import pty
import subprocess
import sys

import pytest

from daemon.config import load_config
from daemon.scan import scanner
from daemon.scan.progress import Progress
from daemon.scan.scanner import ScanOptions, scan_library
from tests.conftest import REPO_ROOT, cli_env
from tests.media import jpeg_bytes


class DeleteBeforeHashing(Progress):
    def __init__(self, path):
        self.path = path

    def hashing(self, library, files, total_bytes):
        os.unlink(self.path)


class AppendWhileHashing(Progress):
    def __init__(self, path):
        self.path = path
        self.done = False

    def hashed_bytes(self, n):
        if not self.done:
            self.done = True
            with open(self.path, "ab") as f:
                f.write(b"still being written")


def scan(env, store, **kwargs):
    config = load_config(str(env.config_path))
    return scan_library(store, config, config.libraries[0], **kwargs)


def test_file_vanishing_mid_scan_is_an_error_not_a_row(env, store):
    root = env.library("photos", {"stays": "s", "goes": "g"})
    result = scan(env, store, progress=DeleteBeforeHashing(root / "goes"))
    assert result.status == "partial" and result.stats["created"] == 1
    assert [e.as_json() for e in result.errors] == [
        {"path": "goes", "error": "FileNotFoundError: vanished during the scan"}]
    assert set(env.files()) == {"photos/stays"}


def test_file_written_during_hashing_is_indexed_unhashed_and_retried(env, store):
    root = env.library("photos", {"big": b"x" * (3 << 20)})
    result = scan(env, store, progress=AppendWhileHashing(root / "big"))
    assert result.status == "ok" and result.stats["hashed"] == 0
    assert env.files()["photos/big"]["hash"] is None  # no torn hash stored
    result = scan(env, store)
    assert result.stats["hashed"] == 1 and result.stats["updated"] == 1
    assert env.files()["photos/big"]["hash"].startswith("xxh128:")


def test_observed_deletes_are_not_guarded(env, store):
    root = env.library("photos", {f"f{i:03d}": str(i) for i in range(150)})
    scan(env, store)
    for i in range(150):
        (root / f"f{i:03d}").unlink()
    assert scan(env, store).online is False  # the guard trips for a plain scan
    result = scan(env, store, options=ScanOptions(observed_deletes=True))
    assert result.online and result.stats["missing"] == 150


def test_progress_bar_on_a_tty(sqlite_env):
    # A picture: its `image` and `phash` are still to run after the scan (a file whose only
    # enricher is `mime` is settled by the scan itself, leaving the enrich phase nothing).
    sqlite_env.library("photos", {"a.jpg": jpeg_bytes()})
    leader, follower = pty.openpty()
    proc = subprocess.run(
        [sys.executable, "-m", "daemon", "--config", str(sqlite_env.config_path), "scan"],
        stdout=subprocess.PIPE, stderr=follower, env=cli_env(), cwd=REPO_ROOT, timeout=60,
    )
    os.close(follower)
    drawn = os.read(leader, 65536).decode()
    os.close(leader)
    assert proc.returncode == 0
    assert "walk photos: 1 file found" in drawn and "hash photos: 1 file, " in drawn
    assert "enrich photos: 0 of 1 file, " in drawn  # the enrich phase is drawn too


class StopAfterBytes(Progress):
    """Raises like the daemon's stop request does, once `limit` bytes were hashed."""

    def __init__(self, limit):
        self.limit, self.seen = limit, 0

    def hashed_bytes(self, n):
        self.seen += n
        if self.seen > self.limit:
            raise KeyboardInterrupt


def test_long_scan_is_applied_in_parts_and_a_stop_keeps_them(env, store, monkeypatch):

    monkeypatch.setattr(scanner, "PART_FILES", 4)
    env.library("photos", {f"f{i:02d}": "x" * 100 for i in range(10)})
    with pytest.raises(KeyboardInterrupt):
        scan(env, store, progress=StopAfterBytes(550))  # stops inside the second part
    assert len(env.files()) == 4  # the first part was applied
    result = scan(env, store)
    assert result.stats["unchanged"] == 4 and result.stats["created"] == 6
    assert result.stats["hashed"] == 6


def test_moves_by_hash_and_guard_across_parts(env, store, monkeypatch):
    monkeypatch.setattr(scanner, "PART_FILES", 3)
    root = env.library("photos", {f"old/f{i:03d}": f"content {i}" for i in range(120)})
    scan(env, store)
    ids = {f["path"]: f["hash"] for f in env.json_lines("files")}
    for i in range(120):  # copy-then-delete: new inodes, same bytes, found part by part
        data = (root / f"old/f{i:03d}").read_bytes()
        (root / f"old/f{i:03d}").unlink()
        (root / f"new{i:03d}").write_bytes(data)
    result = scan(env, store)
    assert result.online, result.reason
    assert result.stats["moved"] == 120 and result.stats["missing"] == 0
    assert sorted(f["hash"] for f in env.json_lines("files")) == sorted(ids.values())
    for i in range(120):
        (root / f"new{i:03d}").unlink()
    assert scan(env, store).online is False  # the guard still trips, before any part


def test_a_rescan_of_an_unchanged_library_writes_no_file_row(sqlite_env, tmp_path):
    """Nothing changed: the rescan reads, and writes only its scan_run row and the
    library's last scan (no file row, no change, no per-file statement of any kind)."""
    from daemon.store import Store

    names = {f"d{i}/f{j}": f"{i} {j}" for i in range(3) for j in range(40)}
    names |= {"top": "t", "d1/sub/deep": "x", b"caf\xe9".decode("utf-8", "surrogateescape"): "n"}
    sqlite_env.library("photos", names)
    store = Store(sqlite_env.db_url)
    try:
        assert scan(sqlite_env, store).stats["created"] == len(names)
        statements: list[str] = []
        connection = store.db.connection()
        connection.set_trace_callback(statements.append)
        try:
            result = scan(sqlite_env, store)
        finally:
            connection.set_trace_callback(None)
    finally:
        store.close()
    assert result.stats["unchanged"] == len(names) and result.stats["hashed"] == 0
    writes = [s.split()[:3] for s in statements
              if s.lstrip().upper().startswith(("INSERT", "UPDATE", "DELETE", "REPLACE"))]
    tables = {(w[1] if w[0].upper() == "UPDATE" else w[2]).strip('"') for w in writes}
    assert tables <= {"scan_run", "library"}, writes
    # The keys were compared a page at a time, not fetched row by row.
    selects = [s for s in statements if " FROM file" in s and s.lstrip().startswith("SELECT")]
    assert len(selects) <= 5, selects
