"""A one-shot `assetd scan` stopped while it hashes: SIGTERM (or Ctrl-C, which reaches the whole
process group) stops its hash workers and walkers with it, keeps the parts it committed, and
exits 143 (130).

The scan is made to stop at a known point, not after a guessed delay: the test holds SQLite's
write lock from the moment the hash pool exists (the scanning process then has the executor's
threads; before, it has one), so the scan waits at the commit of a part with its workers
alive, and the signal is sent there.
"""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from daemon.scan.scanner import PART_FILES
from daemon.store import sqlite_path
from tests.conftest import REPO_ROOT, cli_env
from tests.procs import DEADLINE_S, alive, children, threads, wait_for

# Two whole parts: each part is committed with the pool still alive (it closes after the last
# part is hashed), so the scan waits on the lock with workers running, whichever part it is at.
FILES = 2 * PART_FILES


def _file_rows(db_file: str) -> int:
    with sqlite3.connect(db_file, timeout=DEADLINE_S) as db:
        return db.execute("SELECT count(*) FROM file").fetchone()[0]


@pytest.fixture
def big_library(sqlite_env) -> Path:
    root = sqlite_env.library("photos")
    for d in range(FILES // 500):
        directory = root / f"d{d:03d}"
        directory.mkdir()
        for i in range(500):
            (directory / f"f{i:03d}.bin").write_bytes(b"%d/%d" % (d, i))
    return root


@pytest.mark.parametrize(("sig", "to_group", "code", "message"), [
    (signal.SIGTERM, False, 143, "assetd: terminated (SIGTERM)"),
    (signal.SIGINT, True, 130, "assetd: interrupted"),  # Ctrl-C: the whole process group
], ids=["sigterm", "ctrl-c"])
def test_a_stopped_scan_leaves_no_process_and_keeps_its_committed_parts(
        sqlite_env, big_library, sig, to_group, code, message):
    db_file = sqlite_path(sqlite_env.db_url)
    scan = subprocess.Popen(
        [sys.executable, "-m", "daemon", "--config", str(sqlite_env.config_path), "scan",
         "--json", "--no-enrich"],
        cwd=REPO_ROOT, env=cli_env(), stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
        stderr=subprocess.PIPE, text=True, start_new_session=True,
        # As from a terminal: a shell's background job would start with SIGINT ignored.
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    lock = None
    try:
        wait_for(lambda: threads(scan.pid) >= 2 or scan.poll() is not None,
                 "the hash pool to start")
        assert scan.poll() is None, scan.communicate()
        lock = sqlite3.connect(db_file, timeout=DEADLINE_S, isolation_level=None)
        lock.execute("BEGIN IMMEDIATE")  # the scan's next commit waits for it
        committed = lock.execute("SELECT count(*) FROM file").fetchone()[0]
        assert committed in (0, PART_FILES)
        assert threads(scan.pid) >= 2, "the pool is still there: the workers are running"
        before = children(scan.pid)
        assert before, "the hash workers are child processes"
        if to_group:
            os.killpg(scan.pid, sig)
        else:
            scan.send_signal(sig)
        lock.rollback()  # the scan gets the lock back, and with it the signal
        lock.close()
        lock = None
        out, err = scan.communicate(timeout=DEADLINE_S)
    finally:
        if lock is not None:
            lock.close()
        if scan.poll() is None:
            os.killpg(scan.pid, signal.SIGKILL)
            scan.wait()
    assert scan.returncode == code, err
    assert err.strip().splitlines() == [message]
    assert out == ""
    wait_for(lambda: not any(alive(child) for child in before),
             f"the scan's children {sorted(before)} to exit")

    # The part that was waiting was rolled back; a part committed before the stop stays.
    assert _file_rows(db_file) == committed
    again = sqlite_env.json("scan", "--no-enrich")
    assert again["status"] == "ok"
    assert again["stats"]["discovered"] == FILES
    assert again["stats"]["created"] == FILES - committed
    assert again["stats"]["unchanged"] == committed
