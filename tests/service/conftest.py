"""The real `python -m daemon run` process, driven with real files and real signals.

Every wait polls with a deadline; nothing sleeps a fixed time hoping the daemon kept up.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import psycopg2
import pytest

from daemon.store.hashes import from_db
from daemon.store.models import STATE_NAMES
from tests.conftest import REPO_ROOT, Env, cli_env

# Small enough that a test sees ticks and settled events quickly, large enough for 2 busy cores.
DAEMON_SETTINGS = {"tick_interval": 0.3, "settle": "100ms", "hash_budget": 1}
DEFAULT_TIMEOUT_S = 15.0


class Daemon:
    """One `assetd run` process; its stderr is JSON log lines, collected as they come."""

    def __init__(self, env: Env, extra_env: dict[str, str] | None = None):
        self.env = env
        self.extra_env = extra_env or {}
        self.proc: subprocess.Popen | None = None
        self.lines: list[str] = []
        self._lock = threading.Lock()
        self._reader: threading.Thread | None = None

    def start(self, *, wait_ready: bool = True) -> Daemon:
        self.lines = []
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "daemon", "--config", str(self.env.config_path),
             "--log-format", "json", "run"],
            cwd=REPO_ROOT, env={**cli_env(), **self.extra_env}, stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
            start_new_session=True,  # its own process group, as systemd gives it a cgroup
        )
        self._reader = threading.Thread(target=self._read, args=(self.proc,), daemon=True)
        self._reader.start()
        if wait_ready:
            self.wait_log("daemon.ready")
        return self

    def _read(self, proc: subprocess.Popen) -> None:
        for line in proc.stderr:
            with self._lock:
                self.lines.append(line.rstrip("\n"))

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    @property
    def logs(self) -> list[dict]:
        with self._lock:
            lines = list(self.lines)
        parsed = []
        for line in lines:
            try:
                parsed.append(json.loads(line))
            except json.JSONDecodeError:
                parsed.append({"event": "<not json>", "line": line})
        return parsed

    def events(self, event: str, **fields: Any) -> list[dict]:
        return [
            entry for entry in self.logs
            if entry.get("event") == event and all(entry.get(k) == v for k, v in fields.items())
        ]

    def wait_for(self, predicate: Callable[[], Any], timeout: float = DEFAULT_TIMEOUT_S,
                 message: str = "") -> Any:
        deadline = time.monotonic() + timeout
        while True:
            value = predicate()
            if value:
                return value
            if self.proc is not None and self.proc.poll() is not None:
                raise AssertionError(f"daemon exited {self.proc.returncode} while waiting for "
                                     f"{message or predicate}\n{self.dump()}")
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out after {timeout}s waiting for "
                                     f"{message or predicate}\n{self.dump()}")
            time.sleep(0.05)

    def wait_log(self, event: str, timeout: float = DEFAULT_TIMEOUT_S, *, count: int = 1,
                 **fields: Any) -> dict:
        found = self.wait_for(lambda: len(self.events(event, **fields)) >= count and
                              self.events(event, **fields), timeout, f"log {event} {fields}")
        return found[count - 1]

    def last_tick(self) -> float | None:
        """This daemon's heartbeat `last_tick`, read from the database."""
        rows = query_db(self.env.db_url,
                        f"SELECT last_tick FROM daemon WHERE pid = {int(self.pid)}")
        return rows[0][0] if rows else None

    def wait_ticks(self, count: int, timeout: float = DEFAULT_TIMEOUT_S) -> None:
        """Wait until the daemon has finished `count` more ticks (its heartbeat moved)."""
        seen = [self.last_tick()]

        def moved() -> bool:
            tick = self.last_tick()
            if tick != seen[-1]:
                seen.append(tick)
            return len(seen) > count

        self.wait_for(moved, timeout, f"{count} more ticks")

    def signal(self, sig: int) -> None:
        assert self.proc is not None
        self.proc.send_signal(sig)

    def stop(self, timeout: float = 5.0) -> int:
        """SIGTERM, then the exit status (fails if it takes longer than `timeout`)."""
        assert self.proc is not None
        self.proc.send_signal(signal.SIGTERM)
        try:
            returncode = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            raise AssertionError(f"daemon did not exit within {timeout}s\n{self.dump()}") \
                from None
        if self._reader is not None:
            self._reader.join(5)
        return returncode

    def kill(self) -> None:
        """SIGKILL, as systemd's KillMode=control-group does: the daemon and its workers."""
        if self.proc is not None and self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()

    def dump(self) -> str:
        """The last log lines, without the every-tick reconcile lines."""
        with self._lock:
            lines = [line for line in self.lines if '"reconcile.finished"' not in line]
        return "daemon stderr (reconcile.finished left out):\n" + "\n".join(lines[-60:])


def index_rows(db_url: str) -> dict[str, dict]:
    """The file table keyed by "library/path", read directly (fast enough to poll)."""
    query = (
        "SELECT l.name, f.rel_path, f.id, f.content_hash, f.is_missing, f.size, f.state"
        " FROM file f JOIN library l ON l.id = f.library_id"
    )
    return {
        f"{name}/{bytes(rel).decode('utf-8', 'backslashreplace')}": {
            "id": row_id, "hash": from_db(content_hash), "missing": bool(missing), "size": size,
            "state": STATE_NAMES[state],
        }
        for name, rel, row_id, content_hash, missing, size, state in query_db(db_url, query)
    }


def query_db(db_url: str, query: str) -> list[tuple]:
    """Rows of one query, on a connection of its own (no tables yet: no rows)."""
    if db_url.startswith("sqlite:///"):
        path = db_url[len("sqlite:///"):]
        if not os.path.exists(path):
            return []
        conn = sqlite3.connect(path, timeout=60)
        try:
            return conn.execute(query).fetchall()
        except sqlite3.OperationalError as exc:  # tables not created yet
            if "no such table" in str(exc):
                return []
            raise
        finally:
            conn.close()
    conn = psycopg2.connect(db_url)
    try:
        with conn.cursor() as cur:
            cur.execute(query)
            return cur.fetchall()
    finally:
        conn.close()


class Index:
    """Polling views of one database."""

    def __init__(self, db_url: str):
        self.db_url = db_url

    def rows(self) -> dict[str, dict]:
        return index_rows(self.db_url)

    def row(self, key: str) -> dict | None:
        return self.rows().get(key)

    def hashed(self, key: str, *, present: bool = True) -> dict | None:
        """The row once it is present (or missing, with present=False) and hashed."""
        row = self.row(key)
        if row and row["hash"] and row["missing"] != present:
            return row
        return None


def write(path: Path, content: bytes | str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(content.encode() if isinstance(content, str) else content)
    return path


@pytest.fixture
def daemon_env(sqlite_env: Env) -> Env:
    """A SQLite test world with the daemon's fast settings."""
    sqlite_env.daemon.update(DAEMON_SETTINGS)
    sqlite_env.write_config()
    return sqlite_env


@pytest.fixture
def index(daemon_env: Env) -> Index:
    return Index(daemon_env.db_url)


@pytest.fixture
def make_daemon(request) -> Iterator[Callable[..., Daemon]]:
    """`make_daemon(extra_env=None, env=daemon_env)`: a Daemon, killed at teardown if running."""
    started: list[Daemon] = []

    def make(extra_env: dict[str, str] | None = None, env: Env | None = None) -> Daemon:
        daemon = Daemon(env or request.getfixturevalue("daemon_env"), extra_env)
        started.append(daemon)
        return daemon

    yield make
    for daemon in started:
        daemon.kill()
