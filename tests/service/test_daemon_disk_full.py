"""The filesystem holding a SQLite index fills up: logged once, nothing lost, caught up later.

A small tmpfs holds the database; a filler file takes its last bytes while the daemon runs.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
import subprocess

import pytest

from tests.conftest import Env
from tests.service.conftest import DAEMON_SETTINGS, Index, write

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="mounting a tmpfs needs root")


@pytest.fixture
def small_fs(tmp_path):
    mount = tmp_path / "state"
    mount.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=4m", "tmpfs", str(mount)], check=True)
    yield mount
    subprocess.run(["umount", "-l", str(mount)], check=False)


def fill(mount) -> None:
    """Take every free byte of the filesystem. Unbuffered: a buffered file kept the bytes of
    its last short write and raised ENOSPC again when closed, outside the suppress."""
    with open(mount / "filler", "wb", buffering=0) as f, contextlib.suppress(OSError):
        while True:
            f.write(b"\0" * 65536)


def test_a_full_disk_is_an_outage_the_daemon_survives(tmp_path, small_fs, make_daemon):
    env = Env(tmp_path, f"sqlite:///{small_fs}/index.db")
    env.daemon.update(DAEMON_SETTINGS)
    root = env.library("photos", {"a.jpg": "a"})
    daemon = make_daemon(env=env).start()
    index = Index(env.db_url)
    daemon.wait_for(lambda: index.hashed("photos/a.jpg"))

    fill(small_fs)
    for i in range(200):  # names long enough that the index must grow
        write(root / f"{'n' * 150}{i}.jpg", f"new {i}")
    down = daemon.wait_log("database.unreachable", timeout=30)
    assert "full" in down["error"]
    cli = env.cli("tag", "add", str(root / "a.jpg"), "x", check=None)
    assert cli.returncode == 3 and len(cli.stderr.strip().splitlines()) == 1
    assert "disk is full" in cli.stderr

    os.unlink(small_fs / "filler")
    daemon.wait_log("database.recovered", timeout=60)
    daemon.wait_for(lambda: all(index.hashed(f"photos/{'n' * 150}{i}.jpg")
                                for i in range(200)), timeout=60)
    assert len(daemon.events("database.unreachable")) == 1
    assert daemon.stop() == 0
    with contextlib.closing(sqlite3.connect(small_fs / "index.db")) as conn:
        assert conn.execute("PRAGMA integrity_check").fetchone() == ("ok",)
