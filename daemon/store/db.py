"""Connect by URL, SQLite pragmas, transactions that never fail with "database is locked".

SQLite: WAL (readers never block the writer), a long busy_timeout, and write transactions
opened with BEGIN IMMEDIATE: a deferred transaction that reads and then writes can fail at
once with SQLITE_BUSY when another process committed in between, and busy_timeout does not
help there. PostgreSQL: one connection per thread; passes take an advisory lock so the same
pass never runs twice at once, even from several hosts.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import zlib
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Any
from urllib.parse import parse_qsl, unquote, urlsplit, urlunsplit

from peewee import Database, PostgresqlDatabase, SqliteDatabase

from daemon.store import migrations
from daemon.store.models import database_proxy

SQLITE_BUSY_TIMEOUT_MS = 60_000


class DatabaseUrlError(ValueError):
    pass


class NoIndexError(Exception):
    """The URL names no assetd index, and this command does not create one."""

    def __init__(self, where: str):
        super().__init__(f"no index at {where}: run `assetd scan` or `assetd run` first")


def sqlite_path(url: str) -> str | None:
    """The database file of a sqlite:/// URL (None for other backends)."""
    if not url.startswith("sqlite://"):
        return None
    path = url[len("sqlite://"):]
    # sqlite:///relative.db and sqlite:////absolute/path.db, as SQLAlchemy spells them.
    if path.startswith("/"):
        path = path[1:]
    return os.path.abspath(unquote(path)) if path else None


def redact_url(url: str) -> str:
    """The URL without its password, for status output and logs."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.replace(":" + parts.password + "@", ":***@")
    return urlunsplit(parts._replace(netloc=netloc))


def _open(url: str, *, create: bool) -> Database:
    path = sqlite_path(url)
    if path is not None:
        if not create and not os.path.isfile(path):
            raise NoIndexError(path)  # before connecting: sqlite3 would create the file
        if create:
            make_state_dir(os.path.dirname(path))
        return SqliteDatabase(
            path,
            pragmas={
                "journal_mode": "wal",
                "busy_timeout": SQLITE_BUSY_TIMEOUT_MS,
                "synchronous": "normal",
                "foreign_keys": 1,
                "cache_size": -64_000,
            },
            timeout=SQLITE_BUSY_TIMEOUT_MS / 1000,
            check_same_thread=False,
        )
    parts = urlsplit(url)
    if parts.scheme not in ("postgresql", "postgres"):
        raise DatabaseUrlError(f"unsupported database URL {redact_url(url)!r}")
    dbname = unquote(parts.path.lstrip("/"))
    if not dbname:
        raise DatabaseUrlError(f"database URL {redact_url(url)!r} names no database")
    options: dict[str, Any] = dict(parse_qsl(parts.query))
    return PostgresqlDatabase(
        dbname,
        user=unquote(parts.username) if parts.username else None,
        password=unquote(parts.password) if parts.password else None,
        host=parts.hostname or None,
        port=parts.port or None,
        **options,
    )


def make_state_dir(path: str) -> None:
    """Create the directory that holds the database (0700: the index lists every file name).

    An existing directory is left as it is: its owner chose its mode.
    """
    if not os.path.isdir(path):
        os.makedirs(path, mode=0o700, exist_ok=True)


class Store:
    """An open, migrated database plus the few raw-SQL helpers the hot paths need.

    `create=False` (every command but `scan` and `run`) opens only an existing index: a
    mistyped path must be an error, not a new empty index reporting "0 files".
    """

    def __init__(self, url: str, *, create: bool = True):
        self.url = url
        self.db = _open(url, create=create)
        self.is_sqlite = isinstance(self.db, SqliteDatabase)
        self.param = self.db.param
        database_proxy.initialize(self.db)
        self.db.connect(reuse_if_open=True)
        if not create and migrations.current_version(self) == 0:
            self.close()
            raise NoIndexError(sqlite_path(url) or redact_url(url))
        if self.is_sqlite and create:
            _restrict_sqlite_files(sqlite_path(url))
        migrations.migrate(self)

    def close(self) -> None:
        if not self.db.is_closed():
            self.db.close()

    @contextlib.contextmanager
    def write_tx(self) -> Iterator[None]:
        """One write transaction; BEGIN IMMEDIATE on SQLite (see the module docstring)."""
        if self.is_sqlite:
            with self.db.atomic(lock_type="IMMEDIATE"):
                yield
        else:
            with self.db.atomic():
                yield

    def lock(self, name: str) -> None:
        """Serialize a named critical section across processes and hosts, until commit.

        Call inside `write_tx`. SQLite's IMMEDIATE transaction already excludes every other
        writer; PostgreSQL gets a transaction-scoped advisory lock.
        """
        if not self.is_sqlite:
            self.execute("SELECT pg_advisory_xact_lock(?)", (zlib.crc32(name.encode()),))

    @contextlib.contextmanager
    def scan_lock(
        self, library: str, on_wait: Callable[[], None] | None = None
    ) -> Iterator[None]:
        """Held for a whole scan of one library (plan and every apply batch), so two
        processes never plan against the same snapshot and insert the same file twice.

        PostgreSQL: a session advisory lock (works across hosts). SQLite is local to one
        host: an flock on a per-library file beside the database. When another process holds
        it, `on_wait` is called once before waiting (the CLI says why it is not moving).
        """
        if not self.is_sqlite:
            key = zlib.crc32(("assetd.scan." + library).encode())
            if not self.query("SELECT pg_try_advisory_lock(?)", (key,))[0][0]:
                if on_wait is not None:
                    on_wait()
                self.execute("SELECT pg_advisory_lock(?)", (key,))
            try:
                yield
            finally:
                self.execute("SELECT pg_advisory_unlock(?)", (key,))
            return
        lock_dir = sqlite_path(self.url) + "-locks"
        make_state_dir(lock_dir)
        fd = os.open(os.path.join(lock_dir, library + ".lock"), os.O_RDWR | os.O_CREAT, 0o600)
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                if on_wait is not None:
                    on_wait()
                fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)  # releases the flock

    def try_daemon_lock(self, host: str) -> bool:
        """Hold "the daemon of `host` on this database" until the process exits.

        False when another live process holds it. A lock, not a pid check: a daemon that
        died (SIGKILL, power loss) releases it with its connection or its file descriptor,
        so it never blocks its own restart. PostgreSQL: a session advisory lock on the main
        thread's connection (works across machines that share the host name by mistake too);
        SQLite: an flock beside the database.
        """
        if not self.is_sqlite:
            key = zlib.crc32(("assetd.daemon." + host).encode())
            return bool(self.query("SELECT pg_try_advisory_lock(?)", (key,))[0][0])
        lock_dir = sqlite_path(self.url) + "-locks"
        make_state_dir(lock_dir)
        name = "daemon." + host.replace("/", "_") + ".lock"
        fd = os.open(os.path.join(lock_dir, name), os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            return False
        self._daemon_lock_fd = fd  # kept open (so locked) for the life of the process
        return True

    def sql(self, text: str) -> str:
        """Write queries with `?` placeholders; psycopg2 wants `%s`."""
        return text if self.param == "?" else text.replace("?", self.param)

    def execute(self, text: str, params: Sequence[Any] = ()) -> Any:
        return self.db.execute_sql(self.sql(text), tuple(params))

    def query(self, text: str, params: Sequence[Any] = ()) -> list[tuple]:
        return list(self.execute(text, params).fetchall())

    def executemany(self, text: str, rows: Iterable[Sequence[Any]]) -> int:
        """Batched executemany on the raw cursor: ~10x faster than insert_many on SQLite."""
        rows = list(rows)
        if rows:
            cursor = self.db.cursor()
            cursor.executemany(self.sql(text), rows)
        return len(rows)


def _restrict_sqlite_files(path: str) -> None:
    """The database and its WAL/SHM files are the user's alone (0600), like the state dir."""
    for name in (path, path + "-wal", path + "-shm"):
        with contextlib.suppress(FileNotFoundError):
            if os.stat(name).st_mode & 0o077:
                os.chmod(name, 0o600)


def describe_index(url: str) -> str:
    """What is at `url`, for `config check`, creating nothing.

    Raises OSError when `scan` could not create a SQLite index there, NoIndexError never,
    and peewee's OperationalError when the server cannot be reached.
    """
    path = sqlite_path(url)
    if path is not None and not os.path.isfile(path):
        ancestor = os.path.dirname(path)
        while not os.path.isdir(ancestor):
            ancestor = os.path.dirname(ancestor)
        if not os.access(ancestor, os.W_OK | os.X_OK):
            raise PermissionError(f"cannot create {path}: {ancestor} is not writable")
        return f"no index yet at {path}: `assetd scan` or `assetd run` creates it"
    where = path or redact_url(url)
    try:
        store = Store(url, create=False)
    except NoIndexError:
        return f"no index yet at {where}: `assetd scan` or `assetd run` creates it"
    try:
        return f"index at {where} (schema version {migrations.current_version(store)})"
    finally:
        store.close()


def connect(url: str, *, create: bool = True) -> Store:
    return Store(url, create=create)
