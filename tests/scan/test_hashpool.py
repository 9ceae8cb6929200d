"""The hash pool's worker processes load the hashing code (and mime's), not the CLI and the
store: 7-11 MB of PSS each instead of 21 MB."""

from __future__ import annotations

import json
import subprocess
import sys
import tomllib

from tests.conftest import REPO_ROOT, cli_env

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
