"""The change feed with the real daemon: watcher batches, `--follow`, `/changes`, two hosts."""

from __future__ import annotations

import json
import os
import queue
import signal
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from tests.conftest import REPO_ROOT, Env, cli_env, new_pg_schema_url
from tests.service.conftest import DAEMON_SETTINGS, DEFAULT_TIMEOUT_S, write
from tests.service.httpclient import http_request


class Follower:
    """`assetd changes --follow --json` as a process; its lines arrive on a queue."""

    def __init__(self, env: Env, *args: str):
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "daemon", "--config", str(env.config_path), "changes",
             "--follow", "--json", *args],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=REPO_ROOT,
            env=cli_env())
        self.lines: queue.Queue[dict] = queue.Queue()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        for line in self.proc.stdout:
            self.lines.put(json.loads(line))

    def until(self, predicate, timeout_s: float = DEFAULT_TIMEOUT_S) -> list[dict]:
        """Every line up to and including the first that satisfies `predicate`."""
        seen = []
        while True:
            try:
                change = self.lines.get(timeout=timeout_s)
            except queue.Empty:
                raise AssertionError(f"no matching change; saw {seen}\n"
                                     f"{self.proc.stderr.read() if self.proc.poll() else ''}"
                                     ) from None
            seen.append(change)
            if predicate(change):
                return seen

    def stop(self) -> int:
        self.proc.send_signal(signal.SIGTERM)
        code = self.proc.wait(10)
        self._reader.join(10)
        return code


@pytest.fixture
def followers():
    started: list[Follower] = []

    def start(env: Env, *args: str) -> Follower:
        started.append(Follower(env, *args))
        return started[-1]

    yield start
    for follower in started:
        if follower.proc.poll() is None:
            follower.proc.kill()
            follower.proc.wait()
        follower._reader.join(10)


def kind_at(kind: str, path: str):
    return lambda change: change["kind"] == kind and change["path"] == path


def test_watcher_batches_reach_a_follower(daemon_env, make_daemon, followers):
    root = daemon_env.library("photos", {"a.jpg": "a"})
    daemon = make_daemon().start()
    follower = followers(daemon_env)
    startup = follower.until(kind_at("created", "a.jpg"))
    assert startup[0]["id"] == 1

    write(root / "new.jpg", "new")
    [created] = follower.until(kind_at("created", "new.jpg"))[-1:]
    assert created["hash"].startswith("xxh128:") and created["library"] == "photos"
    os.rename(root / "new.jpg", root / "renamed.jpg")
    moved = follower.until(kind_at("moved", "renamed.jpg"))[-1]
    assert moved["old_path"] == "new.jpg" and moved["hash"] == created["hash"]
    os.unlink(root / "a.jpg")
    follower.until(kind_at("missing", "a.jpg"))
    assert follower.stop() == 0  # SIGTERM ends --follow cleanly
    assert daemon.stop() == 0

    everything = daemon_env.json_lines("changes")
    ids = [change["id"] for change in everything]
    assert ids == sorted(set(ids))
    # A consumer that restarts from the last id it stored misses nothing.
    middle = ids[len(ids) // 2]
    assert daemon_env.json_lines("changes", "--since", str(middle)) == \
        [change for change in everything if change["id"] > middle]


def test_changes_over_http(daemon_env, make_daemon):
    daemon_env.library("photos", {"a.jpg": "a", "b.jpg": "b"})
    daemon_env.daemon["listen"] = "127.0.0.1:0"
    daemon_env.write_config()
    daemon = make_daemon().start()
    address = daemon.wait_log("http.listening")["address"]
    reads: list[list[dict]] = []

    def http_matches_the_cli() -> bool:
        # The first tick may still be recording insights: compare only between two equal
        # reads of `changes`, so no change lands between the CLI's read and HTTP's.
        before = daemon_env.json_lines("changes")
        status, body = http_request(address, "GET", "/changes")
        assert status == 200
        reads.append([json.loads(line) for line in body.splitlines()])
        return daemon_env.json_lines("changes") == before and reads[-1] == before

    daemon.wait_for(http_matches_the_cli)
    expected = reads[-1]
    status, body = http_request(address, "GET", f"/changes?since={expected[0]['id']}&limit=1")
    assert [json.loads(line) for line in body.splitlines()] == expected[1:2]
    status, body = http_request(address, "GET", "/changes?library=nope")
    assert (status, body) == (200, "")
    for bad in ("since=x", "since=-1", "limit=0", "limit=10001"):
        status, body = http_request(address, "GET", "/changes?" + bad)
        assert status == 400 and body.count("\n") == 1, (bad, body)
    assert http_request(address, "POST", "/changes")[0] == 405
    assert daemon.stop() == 0


def host_env(tmp_path: Path, url: str, host: str, library: str) -> Env:
    env = Env(tmp_path / host, url)
    env.tmp_path.mkdir()
    env.daemon.update(DAEMON_SETTINGS | {"host": host})
    env.library(library, {"first.jpg": host})
    return env


@pytest.mark.postgres
def test_two_hosts_one_feed_on_postgres(tmp_path, pg_database, make_daemon, followers):
    """A follower on one host sees the other host's daemon's changes as they commit; ids
    interleave across hosts and never go back."""
    url = new_pg_schema_url(pg_database)
    nas1 = host_env(tmp_path, url, "nas1", "photos")
    nas2 = host_env(tmp_path, url, "nas2", "music")
    nas1.cli("scan")
    follower = followers(nas1)
    follower.until(kind_at("created", "first.jpg"))
    daemon = make_daemon(env=nas2).start()
    seen = follower.until(lambda c: c["host"] == "nas2" and c["path"] == "first.jpg")
    write(tmp_path / "nas2" / "music" / "song.flac", "song")
    nas1.cli("tag", "add", str(tmp_path / "nas1" / "photos" / "first.jpg"), "keep")
    seen += follower.until(kind_at("created", "song.flac"))
    # The tag and the daemon's new file commit in either order.
    if not any(c["kind"] == "tagged" for c in seen):
        seen += follower.until(lambda c: c["kind"] == "tagged")
    hosts = {(c["host"], c["library"]) for c in seen}
    assert {("nas2", "music"), ("nas1", "photos")} <= hosts
    ids = [c["id"] for c in seen]
    assert ids == sorted(ids) and len(set(ids)) == len(ids)
    assert follower.stop() == 0
    assert daemon.stop() == 0
    # --since from either host reads the one feed
    assert nas2.json_lines("changes", "--since", str(ids[0])) == \
        nas1.json_lines("changes", "--since", str(ids[0]))


def test_the_daemon_drops_changes_older_than_the_retention(daemon_env, make_daemon):
    # The retention is switched by SIGHUP around each read, so no read races a tick: a
    # `changes` process can take over a second on a loaded machine, longer than "1s".
    daemon_env.daemon["change_retention"] = ""
    root = daemon_env.library("photos", {"a.jpg": "a"})
    daemon = make_daemon().start()
    first = daemon_env.json_lines("changes")
    assert first and first[0]["id"] == 1

    def reload(retention: str, count: int) -> None:
        daemon_env.daemon["change_retention"] = retention
        daemon_env.write_config()
        daemon.signal(signal.SIGHUP)
        daemon.wait_log("config.reloaded", count=count)

    reload("1s", 1)
    daemon.wait_for(lambda: daemon_env.json_lines("changes")[0]["kind"] == "reset")
    reload("", 2)  # keep what comes next until it has been read
    write(root / "later.jpg", "later")
    seen: list[list[dict]] = []

    def later_is_listed() -> bool:
        seen.append(daemon_env.json_lines("changes"))
        return any(c.get("path") == "later.jpg" for c in seen[-1])

    daemon.wait_for(later_is_listed)
    reset, *kept = seen[-1]
    assert reset["kind"] == "reset" and reset["oldest_id"] > first[0]["id"]
    assert kept[0]["id"] == reset["oldest_id"]
    assert daemon.stop() == 0
