"""The hash pool's worker processes load the hashing code (and mime's), not the CLI and the
store: 7-11 MB of PSS each instead of 21 MB."""

from __future__ import annotations

import json
import subprocess
import sys
import tomllib

import pytest

from tests.conftest import REPO_ROOT, cli_env
from tests.procs import DEADLINE_S

# Run as the `assetd` console script runs: its first lines are pip's, made from pyproject's
# entry point; then, with a second thread (as in the daemon, so the pool spawns its workers),
# hash enough files to start the pool, sniffing mime as the daemon does, and ask a worker
# what it has imported.
_SCRIPT = """\
import json, sys, threading
from {module} import {function}

if __name__ == "__main__":
    import os
    from daemon.config import empty_config
    from daemon.scan import hashpool
    from daemon.scan.sniffed import SniffedInsights
    from daemon.scan.walk import DiskEntry

    threading.Thread(target=threading.Event().wait, daemon=True).start()
    root = sys.argv[1].encode()
    entries = [DiskEntry(name, 4, 0, 0, 0) for name in sorted(os.listdir(root))]
    sniffed = SniffedInsights(empty_config("sqlite:///unused.db"))  # mime on: the default
    hasher = hashpool.Hasher(root, False, sniff=sniffed.sniffer,
                             head_bytes=SniffedInsights.head_bytes)
    results = list(hasher.results(hasher.submit(entries), lambda n: None))
    # Each worker unpickles a job (the hash function, the sniffer) before it answers.
    loaded = set()
    for _ in range(8):
        loaded.update(hasher._pool.submit(eval, "list(__import__('sys').modules)").result())
    hasher.close()
    print(json.dumps({{"hashed": sum(r[1] == "hashed" for r in results),
                      "sniffed": sum(r[3] is not None for r in results),
                      "loaded": sorted(loaded)}}))
"""
HEAVY = ("daemon.cli", "daemon.store", "daemon.config", "peewee", "psycopg2", "structlog",
         "apscheduler")


def test_spawned_hash_workers_import_neither_the_cli_nor_the_store(tmp_path):
    from daemon.scan.hashpool import POOL_MIN_FILES

    entry_point = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())[
        "project"]["scripts"]["assetd"]
    module, function = entry_point.split(":")
    script = tmp_path / "assetd"
    script.write_text(_SCRIPT.format(module=module, function=function))
    root = tmp_path / "files"
    root.mkdir()
    for index in range(POOL_MIN_FILES):
        (root / f"f{index:04d}.txt").write_text("abc\n")
    done = subprocess.run([sys.executable, str(script), str(root)], env=cli_env(),
                          capture_output=True, text=True, timeout=120, check=True)
    report = json.loads(done.stdout)
    assert report["hashed"] == report["sniffed"] == POOL_MIN_FILES
    assert [m for m in report["loaded"] if m.split(".")[0] in HEAVY or m.startswith(HEAVY)] == []


# A worker that dies while it sends its results back leaves part of a message in the pipe all
# workers share, and the executor's manager thread reading the rest of it, for good: the
# scan waited forever on its batch, or on the pool's shutdown (a stopped scan, killing its
# workers, hung 1 in ~30 times on a loaded machine). Which byte a worker dies at cannot be
# chosen, so the half-sent result is written into the pipe here; the workers are busy (a
# sniffer that sleeps), and then killed: by the scan's own stop, or from outside.
_HALF_SENT = """\
import os, signal, struct, sys, time
from concurrent.futures.process import BrokenProcessPool
from daemon.scan import hashpool
from daemon.scan.walk import DiskEntry


def asleep(head, path_text):
    time.sleep(3600)


if __name__ == "__main__":
    root, how = sys.argv[1].encode(), sys.argv[2]
    entries = [DiskEntry(name, 4, 0, 0, 0) for name in sorted(os.listdir(root))]
    hasher = hashpool.Hasher(root, False, sniff=asleep, head_bytes=16)
    pending = hasher.submit(entries)
    pool = hasher._pool
    while len([p for p in (pool._processes or {}).values() if p.is_alive()]) < 2:
        time.sleep(0.01)
    # The length of a 1,000-byte message, and its first 10 bytes.
    os.write(pool._result_queue._writer.fileno(), struct.pack("!i", 1000) + b"x" * 10)
    if how == "stopped":
        hasher.close(abandon=True)
    else:
        for process in pool._processes.values():
            os.kill(process.pid, signal.SIGKILL)
        try:
            list(hasher.results(pending, lambda n: None))
        except BrokenProcessPool:
            print("broken")
        hasher.close()
    print("closed")
"""


@pytest.mark.parametrize(("how", "out"), [("stopped", "closed\n"),
                                          ("killed", "broken\nclosed\n")])
def test_a_worker_killed_while_it_sends_its_results_does_not_hang_the_scan(tmp_path, how, out):
    from daemon.scan.hashpool import POOL_MIN_FILES

    script = tmp_path / "half_sent.py"
    script.write_text(_HALF_SENT)
    root = tmp_path / "files"
    root.mkdir()
    for index in range(2 * POOL_MIN_FILES):
        (root / f"f{index:04d}.txt").write_text("abc\n")
    done = subprocess.run([sys.executable, str(script), str(root), how], env=cli_env(),
                          capture_output=True, text=True, timeout=DEADLINE_S,
                          start_new_session=True)
    assert (done.returncode, done.stdout) == (0, out), done.stderr
