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
import io
import itertools
import os
import re
import socket
import threading
import zlib
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Any
from urllib.parse import parse_qsl, unquote, urlsplit, urlunsplit

from peewee import (
    BlobField,
    BooleanField,
    Database,
    Field,
    FloatField,
    ForeignKeyField,
    IntegerField,
    Model,
    PostgresqlDatabase,
    SqliteDatabase,
)

from daemon.store import changes, deferred_indexes, hashes, migrations, paths, pgdriver
from daemon.store.models import STATE_CODES, File, HashField, StateField, database_proxy
from daemon.store.statistics import TRACKED, Statistics, written_table

SQLITE_BUSY_TIMEOUT_MS = 60_000
# SQLite's page cache, per connection (peewee opens one per thread: the daemon's writer, its
# main thread, each step of the scheduled verify, the HTTP thread). The daemon's RSS is mostly
# these caches: 64 MB each made a daemon of 1M files idle at 200 MB (two of them full: the
# writer's, and the verify's first `count(*)` over the library, freed but kept by malloc).
# The database file is in the kernel's page cache anyway; what a bigger cache saves is a
# copy per page miss: 64 MB made a cold insert of a million files 6 % cheaper in CPU, which
# the daemon's timings did not show (bench/README.md, "Memory").
SQLITE_CACHE_KIB = 16 * 1024
PG_PAGE_ROWS = 1000  # rows per round trip of a bulk statement on PostgreSQL
STREAM_PAGE_ROWS = 5000  # rows per round trip of `Store.stream` on PostgreSQL
_STREAM_IDS = itertools.count(1)  # a server-side cursor's name is unique in its session
PG_SESSION_OPTIONS = "-c jit=off -c max_parallel_workers_per_gather=0 -c work_mem=64MB"  # _open


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
        database = SqliteDatabase(
            path,
            pragmas={
                "journal_mode": "wal",
                "busy_timeout": SQLITE_BUSY_TIMEOUT_MS,
                "synchronous": "normal",
                "foreign_keys": 1,
                "cache_size": -SQLITE_CACHE_KIB,  # negative: KiB, not pages
            },
            timeout=SQLITE_BUSY_TIMEOUT_MS / 1000,
            check_same_thread=False,
        )
        database.register_function(hashes.to_db, hashes.SQLITE_DIGEST_FUNCTION, 1,
                                   deterministic=True)
        return database
    parts = urlsplit(url)
    if parts.scheme not in ("postgresql", "postgres"):
        raise DatabaseUrlError(f"unsupported database URL {redact_url(url)!r}")
    dbname = unquote(parts.path.lstrip("/"))
    if not dbname:
        raise DatabaseUrlError(f"database URL {redact_url(url)!r} names no database")
    options: dict[str, Any] = dict(parse_qsl(parts.query))
    # JIT compiles a statement whose estimated cost is high, which the lifecycle pass's
    # UPDATE over a fresh library's files always is: 1.2 s of compiling (inlining and
    # optimizing 178 functions) to run a 2.9 s statement at 100k files, on every scan.
    # assetd's statements are short index look-ups or one pass over a table: never worth it.
    # No parallel workers: each rebuilt the whole GROUP BY of `dupes` (3x the CPU on two
    # cores); and room for that GROUP BY's hash at 100k files (4 MB spilled it to disk):
    # dupes' query 244 -> 141 ms.
    # libpq reads PGOPTIONS only when the connection gives no `options`: keep it too, after
    # ours, so that a user's own `-c jit=on` still wins.
    given = options.get("options", os.environ.get("PGOPTIONS"))
    options["options"] = " ".join(filter(None, [PG_SESSION_OPTIONS, given]))
    pgdriver.load()
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

    def __init__(self, url: str, *, create: bool = True, host: str | None = None):
        self.url = url
        self.host = host or socket.gethostname()  # who applied a change, in the change feed
        self._tx = threading.local()  # per thread: write_tx depth and the changes pending
        self.db = _open(url, create=create)
        self.is_sqlite = isinstance(self.db, SqliteDatabase)
        self.param = self.db.param
        self.statistics = None if self.is_sqlite else Statistics(self)
        database_proxy.initialize(self.db)
        self.db.connect(reuse_if_open=True)
        if not create and migrations.current_version(self) == 0:
            self.close()
            raise NoIndexError(sqlite_path(url) or redact_url(url))
        if self.is_sqlite and create:
            _restrict_sqlite_files(sqlite_path(url))
        migrations.migrate(self)
        if create:  # `scan` and `run`: a first scan that did not end left them out
            deferred_indexes.ensure(self)

    def close(self) -> None:
        if not self.db.is_closed():
            self.db.close()

    @contextlib.contextmanager
    def write_tx(self) -> Iterator[None]:
        """One write transaction; BEGIN IMMEDIATE on SQLite (see the module docstring).

        Nested calls join the outer transaction. The changes recorded inside
        (`record_changes`) are written as the outermost one commits, or dropped with it.
        On PostgreSQL, the tables it wrote many rows to are analyzed after the commit
        (`statistics.py`).
        """
        state = self._tx
        depth = getattr(state, "depth", 0)
        if depth == 0:
            state.pending, state.written = [], {}
        state.depth = depth + 1
        try:
            atomic = (self.db.atomic(lock_type="IMMEDIATE") if self.is_sqlite
                      else self.db.atomic())
            with atomic:
                yield
                if depth == 0:
                    changes.flush(self, state.pending)
            if depth == 0 and state.written and self.statistics is not None:
                self.statistics.committed(state.written)
        finally:
            state.depth = depth
            if depth == 0:
                state.pending, state.written = [], {}

    def record_changes(self, recorded: Iterable[changes.Change | changes.CreatedRows
                                                | changes.PrunedRows]) -> None:
        """Put changes in the change feed, in this thread's open `write_tx` (a `CreatedRows`
        stands for the `created` changes of a range of rows this transaction inserted, a
        `PrunedRows` for the `pruned` changes of the rows it deleted)."""
        if not getattr(self._tx, "depth", 0):
            raise RuntimeError("record_changes outside a write transaction")
        self._tx.pending.extend(recorded)

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
        fd = self._lock_file(library)
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
        # Library names are [a-z0-9_-]+: "daemon.HOST" never names a library's lock.
        fd = self._lock_file("daemon." + host.replace("/", "_"))
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            return False
        self._daemon_lock_fd = fd  # kept open (so locked) for the life of the process
        return True

    def _lock_file(self, name: str) -> int:
        """An open fd on `NAME.lock` in the private directory beside a SQLite database."""
        lock_dir = sqlite_path(self.url) + "-locks"
        make_state_dir(lock_dir)
        return os.open(os.path.join(lock_dir, name + ".lock"), os.O_RDWR | os.O_CREAT, 0o600)

    def sql(self, text: str) -> str:
        """The one dialect layer: queries are written with `?` placeholders (SQLite's).

        For psycopg2 a `?` outside string literals becomes `%s`, and every literal `%`
        (in a string literal or an operator) is doubled, so `'a?b'` or `LIKE 'x%'` mean
        the same on both backends.
        """
        if self.param == "?":
            return text
        pieces = text.split("'")
        for i, piece in enumerate(pieces):
            piece = piece.replace("%", "%%")
            pieces[i] = piece if i % 2 else piece.replace("?", self.param)
        return "'".join(pieces)

    def execute(self, text: str, params: Sequence[Any] = ()) -> Any:
        # Without parameters psycopg2 does no %-formatting: the text goes as written.
        cursor = self.db.execute_sql(self.sql(text) if params else text, tuple(params))
        if self.statistics is not None:
            self._wrote(written_table(text), cursor.rowcount)
        return cursor

    def _wrote(self, table: str | None, rows: int) -> None:
        """Count rows written to a tracked table (PostgreSQL), for `statistics.py`."""
        if table is None or rows <= 0 or self.statistics is None:
            return
        if getattr(self._tx, "depth", 0):
            self._tx.written[table] = self._tx.written.get(table, 0) + rows
        else:
            self.statistics.committed({table: rows})  # autocommit: already committed

    def query(self, text: str, params: Sequence[Any] = ()) -> list[tuple]:
        return list(self.execute(text, params).fetchall())

    def stream(self, text: str, params: Sequence[Any] = ()) -> Iterator[tuple]:
        """The rows of a query that may return every file, without holding them all.

        SQLite's cursor steps through the result as it is read. psycopg2's ordinary cursor
        receives the whole result first (libpq keeps it in memory: `files --json` at 100k
        files grew by 22 MB, at 10M it would be 2 GB), so on PostgreSQL the rows come through
        a server-side cursor, `STREAM_PAGE_ROWS` a round trip. WITH HOLD: it needs no
        transaction around the reading (a slow reader, `files | less`, would otherwise hold
        one open, and with it a snapshot that keeps vacuum from the table); the server keeps
        the result until the cursor is closed, which the iterator does when it ends or is
        dropped.
        """
        if self.is_sqlite:
            yield from self.execute(text, params)
            return
        cursor = self.db.connection().cursor(f"assetd_stream_{next(_STREAM_IDS)}",
                                             withhold=True)
        cursor.itersize = STREAM_PAGE_ROWS
        try:
            cursor.execute(self.sql(text) if params else text, tuple(params))
            yield from cursor
        finally:
            with contextlib.suppress(Exception):  # a lost connection took the cursor with it
                cursor.close()

    def executemany(self, text: str, rows: Iterable[Sequence[Any]]) -> int:
        """Batched executemany on the raw cursor: ~10x faster than insert_many on SQLite.

        psycopg2's executemany is one round trip per row; execute_batch sends pages of
        statements at once.
        """
        rows = list(rows)
        if rows:
            cursor = self.db.cursor()
            if self.is_sqlite:
                cursor.executemany(text, rows)
            else:
                import psycopg2.extras  # loaded with the driver (pgdriver.py)

                psycopg2.extras.execute_batch(cursor, self.sql(text), rows, page_size=PG_PAGE_ROWS)
                self._wrote(written_table(text), len(rows))  # at most that many
        return len(rows)

    def insert_rows(self, model: type[Model], columns: Sequence[str],
                    rows: Sequence[Sequence[Any]], *, stored: bool = False) -> int:
        """INSERT many rows: executemany on SQLite, COPY on PostgreSQL. `stored`: the rows
        hold each value as the database stores it already (`_rows_to_db`)."""
        if not rows:
            return 0
        table = model._meta.table_name
        if not stored:
            rows = _rows_to_db(model, columns, rows)
        if self.is_sqlite:
            placeholders = ", ".join("?" for _ in columns)
            self.db.cursor().executemany(
                f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({placeholders})", rows)
            return len(rows)
        formats = [_copy_format(model._meta.columns[column]) for column in columns]
        self._copy(table, columns, formats, rows)
        return len(rows)

    def insert_values(self, table: str, columns: Sequence[str],
                      rows: Sequence[Sequence[Any]]) -> int:
        """INSERT many rows into a table without a model (PostgreSQL: COPY, each column
        written as its first non-NULL value's Python type says)."""
        if not rows:
            return 0
        if self.is_sqlite:
            placeholders = ", ".join("?" for _ in columns)
            self.db.cursor().executemany(
                f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({placeholders})", rows)
            return len(rows)
        formats = [_copy_format_of(next((v for v in values if v is not None), None))
                   for values in zip(*rows, strict=True)]
        self._copy(table, columns, formats, rows)
        return len(rows)

    def _copy(self, table: str, columns: Sequence[str], formats: Sequence[Callable[[Any], str]],
              rows: Sequence[Sequence[Any]]) -> None:
        """COPY rows in: one stream, no per-row statement. ~10x cheaper than execute_values,
        whose per-row mogrify of bytea alone cost 60 us. The text is built column by column
        (text checked for escapes once per column): ~25 ms for 10,000 file rows, about a
        third less than value by value."""
        texts = [_copy_column(fmt, values)
                 for fmt, values in zip(formats, zip(*rows, strict=True), strict=True)]
        text = "\n".join(map("\t".join, zip(*texts, strict=True))) + "\n"
        self.db.cursor().copy_expert(
            f"COPY {table} ({', '.join(columns)}) FROM STDIN", io.StringIO(text))
        self._wrote(table if table in TRACKED else None, len(rows))

    def update_rows(self, model: type[Model], key: str, columns: Sequence[str],
                    rows: Sequence[Sequence[Any]]) -> int:
        """UPDATE many rows by `key`; each row is (key value, *column values).

        SQLite: executemany of one UPDATE. PostgreSQL: one set-based statement per page,
        `UPDATE t SET c = v.c FROM (VALUES ...) AS v WHERE t.key = v.key`, with each value
        cast to its column's type (a VALUES list of NULLs would otherwise be text).
        """
        if not rows:
            return 0
        table = model._meta.table_name
        rows = _rows_to_db(model, (key, *columns), rows)
        if self.is_sqlite:
            sets = ", ".join(f"{column} = ?" for column in columns)
            self.db.cursor().executemany(
                f"UPDATE {table} SET {sets} WHERE {key} = ?",
                [(*row[1:], row[0]) for row in rows])
            return len(rows)
        import psycopg2.extras  # loaded with the driver (pgdriver.py)

        types = _pg_column_types(self.db, model)
        template = "(" + ", ".join(f"%s::{types[c]}" for c in (key, *columns)) + ")"
        sets = ", ".join(f"{column} = v.{column}" for column in columns)
        psycopg2.extras.execute_values(
            self.db.cursor(),
            f"UPDATE {table} AS t SET {sets} FROM (VALUES %s) AS v ({key}, "
            f"{', '.join(columns)}) WHERE t.{key} = v.{key}",
            rows, template=template, page_size=PG_PAGE_ROWS)
        self._wrote(table if table in TRACKED else None, len(rows))
        return len(rows)


def _rows_to_db(model: type[Model], columns: Sequence[str],
                rows: Sequence[Sequence[Any]]) -> Sequence[Sequence[Any]]:
    """`rows` as the database stores them: the rows callers build hold content hashes (the
    `HashField` columns) as text, a file's whole path text and its state's name, as
    everything above the store does; stored, a hash is its digest (`hashes`), the path text
    '' where it is the name's bytes decoded (`paths`) and the state its code (`StateField`)."""
    hash_at = [i for i, column in enumerate(columns)
               if isinstance(model._meta.columns[column], HashField)]
    state_at = [i for i, column in enumerate(columns)
                if isinstance(model._meta.columns[column], StateField)]
    text_at = rel_at = None
    if model is File and "path_text" in columns and "rel_path" in columns:
        text_at, rel_at = columns.index("path_text"), columns.index("rel_path")
    if not hash_at and not state_at and text_at is None:
        return rows
    to_db, stored, code = hashes.to_db, paths.stored, STATE_CODES.__getitem__
    converted = []
    for row in rows:
        row = list(row)
        for i in hash_at:
            row[i] = to_db(row[i])
        for i in state_at:
            row[i] = code(row[i])
        if text_at is not None:
            row[text_at] = stored(row[rel_at], row[text_at])
        converted.append(row)
    return converted


_NEEDS_ESCAPE = re.compile("[\\\\\t\n\r]").search
_COPY_ESCAPES = str.maketrans({"\\": "\\\\", "\t": "\\t", "\n": "\\n", "\r": "\\r"})


def _copy_format(field: Field) -> Callable[[Any], str]:
    """How a column's non-NULL values are written in COPY's text format."""
    if isinstance(field, BooleanField):
        return _copy_bool
    if isinstance(field, BlobField):
        return _copy_bytes
    if isinstance(field, FloatField):
        return repr
    if isinstance(field, IntegerField | ForeignKeyField):
        return str
    return _copy_str


def _copy_bool(value: bool) -> str:
    return "t" if value else "f"


def _copy_bytes(value: bytes) -> str:
    return "\\\\x" + bytes(value).hex()


def _copy_str(value: Any) -> str:
    value = str(value)
    return value.translate(_COPY_ESCAPES) if _NEEDS_ESCAPE(value) else value


def _copy_format_of(value: Any) -> Callable[[Any], str]:
    """The format of a column whose values are of `value`'s Python type."""
    if isinstance(value, bool):
        return _copy_bool
    if isinstance(value, bytes | memoryview):
        return _copy_bytes
    if isinstance(value, float):
        return repr
    if isinstance(value, int):
        return str
    return _copy_str


_COPY_NULL = "\\N"


def _copy_column(fmt: Callable[[Any], str], values: tuple) -> list[str]:
    """One column's values in COPY's text format. Text is checked for the characters COPY
    escapes once per column (almost never there), not once per value."""
    present = [value for value in values if value is not None]
    if fmt is _copy_str:
        texts = list(map(str, present))
        if _NEEDS_ESCAPE("".join(texts)):
            texts = [text.translate(_COPY_ESCAPES) for text in texts]
    else:
        texts = list(map(fmt, present))
    if len(texts) == len(values):
        return texts
    it = iter(texts)
    return [_COPY_NULL if value is None else next(it) for value in values]


def _pg_column_types(db: Database, model: type[Model]) -> dict[str, str]:
    """Column name -> PostgreSQL type, as peewee creates the table."""
    types = {}
    for field in model._meta.sorted_fields:
        field_type = field.field_type
        if field_type in ("AUTO", "BIGAUTO"):
            field_type = "INT" if field_type == "AUTO" else "BIGINT"
        types[field.column_name] = db.field_types.get(field_type, _BASE_TYPES.get(
            field_type, field_type))
    return types


_BASE_TYPES = {"INT": "INTEGER", "BIGINT": "BIGINT", "TEXT": "TEXT", "VARCHAR": "VARCHAR",
               "FLOAT": "REAL", "SMALLINT": "SMALLINT"}


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

