"""Shared fixtures: real temp trees, real SQLite and PostgreSQL, the real CLI.

PostgreSQL tests are never skipped: CI starts the server. Each test session creates its own
database (dropped at the end) and each test gets its own schema in it, selected through the
URL's `options=-csearch_path=...`, so the CLI subprocesses see exactly the test's tables.
"""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import psycopg2
import pytest
import structlog
from hypothesis import settings as hypothesis_settings

REPO_ROOT = Path(__file__).resolve().parent.parent
PG_SERVER_URL = os.environ.get("ASSETD_TEST_PG", "postgresql://postgres@127.0.0.1:5432")
BACKENDS = ["sqlite", "postgres"]


def _pg_admin(dbname: str = "postgres"):
    conn = psycopg2.connect(f"{PG_SERVER_URL}/{dbname}")
    conn.autocommit = True
    return conn


# CI explores the same examples on every run (a landing must not depend on luck); a developer's
# run draws new ones, which is where the property tests find what nobody thought of.
hypothesis_settings.register_profile("ci", derandomize=True, database=None)
if os.environ.get("CI"):
    hypothesis_settings.load_profile("ci")

THREAD_GRACE_S = 5.0


@pytest.fixture(autouse=True)
def no_thread_leaks() -> Iterator[None]:
    """Fail a test that leaves threads running (an observer, a writer, a scheduler...).

    A leaked thread keeps watching, writing or logging into the next test: its failures then
    show up somewhere else, in an order that depends on scheduling.
    """
    before = set(threading.enumerate())
    yield
    # The enrichers' worker pool lives as long as its process (as in the daemon): an
    # in-process test that used it ends it here, so its threads are not counted as a leak.
    workers = sys.modules.get("daemon.meta.workers")
    if workers is not None:
        workers.POOL.kill()
    deadline = time.monotonic() + THREAD_GRACE_S
    while leaked := [t for t in threading.enumerate() if t not in before and t.is_alive()]:
        if time.monotonic() > deadline:
            pytest.fail("test left threads running: " + ", ".join(sorted(t.name for t in leaked)))
        time.sleep(0.05)


@pytest.fixture(autouse=True)
def fresh_structlog() -> Iterator[None]:
    """Each test starts and ends with structlog's defaults: no configuration leaks across."""
    structlog.reset_defaults()
    yield
    structlog.reset_defaults()


class LogCapture:
    """Every structlog event of this process, from any thread, as dicts.

    structlog.testing.capture_logs swaps the global processors for the duration of a `with`
    block and is not thread-safe; the watcher logs from watchdog's threads.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._events: list[dict] = []

    def __call__(self, logger, method_name: str, event_dict: dict):
        with self._lock:
            self._events.append({**event_dict, "log_level": method_name})
        raise structlog.DropEvent

    def events(self) -> list[dict]:
        with self._lock:
            return list(self._events)

    def named(self, event: str) -> list[dict]:
        return [e for e in self.events() if e["event"] == event]

    def wait_for(self, event: str, count: int = 1, timeout_s: float = 10.0) -> list[dict]:
        deadline = time.monotonic() + timeout_s
        while len(found := self.named(event)) < count:
            assert time.monotonic() < deadline, f"no {count} x {event} in {self.events()}"
            time.sleep(0.02)
        return found


@pytest.fixture
def log_capture() -> LogCapture:
    """Capture structlog events (configured before the action under test, never after)."""
    capture = LogCapture()
    structlog.configure(processors=[capture], cache_logger_on_first_use=False)
    return capture


@pytest.fixture(scope="session")
def pg_database() -> Iterator[str]:
    """A PostgreSQL database for this test session (one per xdist worker)."""
    name = f"assetd_test_{os.getpid()}_{secrets.token_hex(3)}"
    admin = _pg_admin()
    with admin.cursor() as cur:
        cur.execute(f'CREATE DATABASE "{name}"')
    admin.close()
    yield f"{PG_SERVER_URL}/{name}"
    admin = _pg_admin()
    with admin.cursor() as cur:
        cur.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    admin.close()


def new_pg_schema_url(pg_database: str) -> str:
    schema = "t_" + secrets.token_hex(6)
    conn = psycopg2.connect(pg_database)
    conn.autocommit = True
    with conn.cursor() as cur:
        cur.execute(f"CREATE SCHEMA {schema}")
    conn.close()
    return f"{pg_database}?options=-csearch_path%3D{schema}"


@pytest.fixture(params=BACKENDS)
def db_url(request, tmp_path) -> str:
    """The database URL, once per backend."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path}/index.db"
    return new_pg_schema_url(request.getfixturevalue("pg_database"))


@pytest.fixture
def sqlite_url(tmp_path) -> str:
    return f"sqlite:///{tmp_path}/index.db"


@pytest.fixture
def store(db_url):
    from daemon.store import Store

    opened = Store(db_url)
    yield opened
    opened.close()


def write_tree(root: Path, files: dict[str, bytes | str]) -> None:
    for rel, content in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(content.encode() if isinstance(content, str) else content)


def toml_value(value) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, list | tuple):
        return "[" + ", ".join(toml_value(v) for v in value) + "]"
    return json.dumps(str(value))


def render_config(db_url: str, libraries: list[dict], daemon: dict | None = None,
                  enrichers: list[dict] | None = None) -> str:
    lines = ["[daemon]", f"database = {toml_value(db_url)}"]
    lines += [f"{k} = {toml_value(v)}" for k, v in (daemon or {}).items()]
    for lib in libraries:
        lines += ["", "[[library]]"] + [f"{k} = {toml_value(v)}" for k, v in lib.items()]
    for enricher in enrichers or []:
        lines += ["", "[[enricher]]"] + [f"{k} = {toml_value(v)}" for k, v in enricher.items()]
    return "\n".join(lines) + "\n"


class Env:
    """A test world: library roots under tmp_path, a config file, and the CLI to run."""

    def __init__(self, tmp_path: Path, db_url: str):
        self.tmp_path = tmp_path
        self.db_url = db_url
        self.config_path = tmp_path / "assetd.toml"
        self.libraries: list[dict] = []
        self.daemon: dict = {}
        self.enrichers: list[dict] = []

    def library(self, name: str = "photos", files: dict | None = None, **options) -> Path:
        root = Path(options.pop("path", self.tmp_path / name))
        root.mkdir(parents=True, exist_ok=True)
        write_tree(root, files or {})
        self.libraries.append({"name": name, "path": str(root), **options})
        self.write_config()
        return root

    def write_config(self) -> Path:
        self.config_path.write_text(
            render_config(self.db_url, self.libraries, self.daemon, self.enrichers)
        )
        return self.config_path

    def cli(self, *args: str, check: int | None = 0, stdin: str | None = None,
            timeout: float = 120, wrapper: list[str] | None = None,
            process_env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
        """`assetd --config CONFIG ARGS`; `process_env` replaces the environment (a PATH
        without ffprobe, a libmagic that will not load)."""
        proc = subprocess.run(
            [*(wrapper or []), sys.executable, "-m", "daemon", "--config", str(self.config_path),
             *args],
            capture_output=True, text=True, cwd=REPO_ROOT, env=process_env or cli_env(),
            input=stdin, timeout=timeout,
        )
        if check is not None and proc.returncode != check:
            raise AssertionError(
                f"assetd {' '.join(args)} exited {proc.returncode}, expected {check}\n"
                f"stdout: {proc.stdout}\nstderr: {proc.stderr}"
            )
        return proc

    def json(self, *args: str, check: int | None = 0):
        return json.loads(self.cli(*args, "--json", check=check).stdout)

    def json_lines(self, *args: str, check: int | None = 0) -> list:
        out = self.cli(*args, "--json", check=check).stdout
        return [json.loads(line) for line in out.splitlines() if line.strip()]

    def files(self, *args: str) -> dict[str, dict]:
        """`files --json --all` keyed by "library/path"."""
        return {f"{f['library']}/{f['path']}": f for f in self.json_lines("files", "--all", *args)}


def without_dac_override() -> list[str]:
    """Root reads and writes everything: a command prefix that drops the capabilities that
    let it, so a permission error is real."""
    if os.geteuid() != 0:
        return []
    return ["setpriv", "--bounding-set", "-dac_override,-dac_read_search"]


def cli_env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = str(REPO_ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    for var in ("ASSETD_CONFIG", "NOTIFY_SOCKET", "WATCHDOG_USEC", "WATCHDOG_PID"):
        env.pop(var, None)
    return env


@pytest.fixture
def env(tmp_path, db_url) -> Env:
    """A test world on each backend."""
    return Env(tmp_path, db_url)


@pytest.fixture
def sqlite_env(tmp_path, sqlite_url) -> Env:
    """A test world on SQLite only (for behaviour that does not depend on the backend)."""
    return Env(tmp_path, sqlite_url)
