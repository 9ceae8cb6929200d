"""SIGHUP, SIGTERM and sd_notify against the real daemon process."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import sqlite3
import stat
import time
from pathlib import Path

import pytest

from daemon.scan.scanner import PART_FILES
from daemon.store import sqlite_path
from tests.procs import DEADLINE_S, alive, children, wait_for
from tests.service.conftest import Daemon, query_db, write


def test_sighup_adds_a_library(daemon_env, index, make_daemon):
    photos = daemon_env.library("photos", {"a.jpg": "a"})
    daemon = make_daemon().start()

    music = daemon_env.library("music", {"song.flac": "la la"})  # rewrites the config
    daemon.signal(signal.SIGHUP)
    reloaded = daemon.wait_log("config.reloaded")
    assert reloaded["added"] == ["music"]
    daemon.wait_for(lambda: index.hashed("music/song.flac"))
    # The new library is watched, not just scanned once.
    write(music / "new.flac", "more")
    daemon.wait_for(lambda: index.hashed("music/new.flac"))

    daemon_env.libraries = [lib for lib in daemon_env.libraries if lib["name"] != "photos"]
    daemon_env.write_config()
    daemon.signal(signal.SIGHUP)
    assert daemon.wait_log("config.reloaded", count=2)["removed"] == ["photos"]
    write(photos / "unwatched.jpg", "no longer in the config")
    write(music / "still.flac", "still watched")
    daemon.wait_for(lambda: index.hashed("music/still.flac"))
    daemon.wait_ticks(2)
    assert "photos/unwatched.jpg" not in index.rows()
    assert daemon.stop() == 0


def test_sighup_with_a_broken_config_keeps_running(daemon_env, index, make_daemon):
    root = daemon_env.library("photos")
    daemon = make_daemon().start()

    good_config = daemon_env.config_path.read_text()
    daemon_env.config_path.write_text(good_config + "\n[daemon.oops]\n")
    daemon.signal(signal.SIGHUP)
    invalid = daemon.wait_log("config.invalid")
    assert invalid["key"] == "daemon.oops"
    assert invalid["file"] == str(daemon_env.config_path)
    assert invalid["level"] == "error"

    write(root / "still-watched.jpg", "x")  # the old config still works
    daemon.wait_for(lambda: index.hashed("photos/still-watched.jpg"))
    assert not daemon.events("config.reloaded")
    assert daemon.stop() == 0


def test_sigterm_exits_0_and_nothing_written_before_it_is_lost(daemon_env, index, make_daemon):
    root = daemon_env.library("photos", {"a.jpg": "a"})
    daemon = make_daemon().start()
    status = daemon_env.json("status")
    assert [d["pid"] for d in status["daemons"]] == [daemon.pid]

    for i in range(200):
        write(root / f"late/{i}.jpg", f"written just before SIGTERM {i}")
    started = time.monotonic()
    assert daemon.stop(timeout=5) == 0
    assert time.monotonic() - started < 5
    events = [e["event"] for e in daemon.logs]
    assert events.index("daemon.stopping") < events.index("daemon.stopped")
    assert events[-1] == "daemon.stopped"
    assert daemon_env.json("status")["daemons"] == [], "the heartbeat row is gone"

    again = make_daemon().start()  # the startup scan finds what the first one did not index
    assert sum(1 for key in index.rows() if key.startswith("photos/late/")) == 200
    assert all(index.hashed(f"photos/late/{i}.jpg") for i in range(200))
    assert again.stop() == 0


def test_sigterm_does_not_wait_for_a_slow_external_enricher(daemon_env, make_daemon, index):
    started_mark = daemon_env.tmp_path / "enricher-started"
    daemon_env.enrichers.append({
        "name": "slow", "match": ["*.mkv"], "timeout": 60,
        "command": ["sh", "-c", f"echo $$ > {started_mark}.tmp; mv {started_mark}.tmp "
                    f"{started_mark}; sleep 60; echo {{}}", "slow", "{path}"],
    })
    daemon_env.library("videos", {"film.mkv": "frames"})
    daemon = make_daemon().start()
    daemon.wait_for(started_mark.exists, message="the slow enricher to start")
    enricher_group = int(started_mark.read_text())  # its own session: pgid == its pid
    began = time.monotonic()
    assert daemon.stop(timeout=5) == 0
    assert time.monotonic() - began < 5
    assert _group_gone_within(enricher_group, 2.0), "the enricher was left running"
    kinds = query_db(daemon_env.db_url, "SELECT k.text FROM insight i JOIN label k"
                                         " ON k.id = i.kind_label")
    assert ("slow",) not in kinds, "an interrupted run is not recorded (it runs again)"


def _group_gone_within(pgid: int, timeout_s: float) -> bool:
    """Killed processes linger a moment as zombies until init reaps them."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            os.killpg(pgid, 0)
        except ProcessLookupError:
            return True
        time.sleep(0.05)
    return False


def test_sigint_stops_like_sigterm(daemon_env, make_daemon):
    daemon_env.library("photos")
    daemon = make_daemon().start()
    daemon.signal(signal.SIGINT)
    assert daemon.proc.wait(5) == 0
    assert daemon.events("daemon.stopped")


@pytest.fixture
def fake_systemd(tmp_path: Path):
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    path = tmp_path / "notify.sock"
    sock.bind(str(path))
    sock.settimeout(0.1)
    yield sock, str(path)
    sock.close()


def test_sd_notify_lifecycle(daemon_env, make_daemon, fake_systemd):
    sock, path = fake_systemd
    daemon_env.library("photos", {"a.jpg": "a"})
    received: list[str] = []

    def drain() -> None:
        with contextlib.suppress(TimeoutError):
            while True:
                received.append(sock.recv(4096).decode())

    def wait_message(prefix: str) -> str:
        def poll() -> str | None:
            drain()
            return next((m for m in received if m.startswith(prefix)), None)

        message = daemon.wait_for(poll, message=f"sd_notify {prefix}")
        received.remove(message)
        return message

    daemon = make_daemon({"NOTIFY_SOCKET": path, "WATCHDOG_USEC": "1000000"})
    daemon.start(wait_ready=False)
    assert wait_message("STATUS=").startswith("STATUS=")
    assert wait_message("READY=1") == "READY=1"
    wait_message("WATCHDOG=1")
    wait_message("WATCHDOG=1")  # again: every half WATCHDOG_USEC

    daemon.signal(signal.SIGHUP)
    reloading = wait_message("RELOADING=1")
    assert reloading.split("\n")[1].startswith("MONOTONIC_USEC=")
    assert wait_message("READY=1") == "READY=1"

    daemon.signal(signal.SIGTERM)
    assert daemon.proc.wait(5) == 0
    drain()
    assert "STOPPING=1" in received


def test_status_line_reports_indexing_progress(daemon_env, make_daemon, fake_systemd):
    sock, path = fake_systemd
    daemon_env.library("photos", {f"{i}.jpg": f"photo {i}" for i in range(30)})
    daemon: Daemon = make_daemon({"NOTIFY_SOCKET": path}).start()
    messages = []
    while True:
        try:
            messages.append(sock.recv(4096).decode())
        except TimeoutError:
            break
    assert "STATUS=indexing photos: 30 files" in messages
    assert daemon.stop() == 0


def test_log_file_is_reopened_on_sighup(daemon_env, make_daemon, tmp_path):
    daemon_env.library("photos")
    daemon_env.daemon["log_file"] = str(tmp_path / "assetd.log")
    daemon_env.write_config()
    log_file = tmp_path / "assetd.log"
    daemon = make_daemon().start(wait_ready=False)

    def logged(path: Path, event: str) -> bool:
        return path.exists() and f'"event": "{event}"' in path.read_text()

    daemon.wait_for(lambda: logged(log_file, "daemon.ready"))
    rotated = log_file.rename(tmp_path / "assetd.log.1")  # what logrotate does
    daemon.signal(signal.SIGHUP)
    daemon.wait_for(lambda: logged(log_file, "config.reloaded"))
    assert not logged(rotated, "config.reloaded")
    assert stat.S_IMODE(log_file.stat().st_mode) == 0o600  # it names every indexed file
    assert daemon.stop() == 0


@pytest.mark.parametrize("to_group", [False, True], ids=["daemon", "every-process"])
def test_sigterm_during_the_startup_scan_ends_its_hash_workers(daemon_env, make_daemon,
                                                                to_group):
    """The startup scan's hash pool (spawned workers, the resource tracker) ends with the
    daemon. The scan is held at a commit by the test's write lock, so the signal arrives
    while its workers are alive, not after a guessed delay. `systemctl stop` sends it to
    every process of the service (KillMode=control-group): the workers die of it too, one
    maybe while it sends its results back, and the daemon still stops cleanly, in time."""
    files = 2 * PART_FILES  # the pool lives until the second part is committed
    root = daemon_env.library("photos")
    for d in range(files // 500):
        (root / f"d{d:03d}").mkdir()
        for i in range(500):
            (root / f"d{d:03d}/f{i:03d}.txt").write_bytes(b"%d/%d" % (d, i))
    daemon = make_daemon().start(wait_ready=False)
    db_file = sqlite_path(daemon_env.db_url)
    # The daemon starts no other process before its first hash pool: a tracker and a worker.
    wait_for(lambda: len(children(daemon.pid)) >= 2 or daemon.proc.poll() is not None,
             "the startup scan's hash pool")
    lock = sqlite3.connect(db_file, timeout=DEADLINE_S, isolation_level=None)
    try:
        lock.execute("BEGIN IMMEDIATE")
        before = children(daemon.pid)
        assert len(before) >= 2, daemon.dump()
        if to_group:
            os.killpg(daemon.pid, signal.SIGTERM)
        else:
            daemon.signal(signal.SIGTERM)
        daemon.wait_log("daemon.stopping")
    finally:
        lock.rollback()
        lock.close()
    assert daemon.proc.wait(DEADLINE_S) == 0, daemon.dump()
    assert daemon.events("daemon.stopped")
    assert not daemon.events("writer.failed"), daemon.dump()
    wait_for(lambda: not any(alive(child) for child in before),
             f"the daemon's children {sorted(before)} to exit")
