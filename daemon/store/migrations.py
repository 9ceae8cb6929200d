"""Forward-only schema migrations, run on every open.

`MIGRATIONS[i]` brings the schema from version i to i + 1. Migration 0 creates the tables
from the models; once a release has shipped, a model change must come with a new migration
here (playhouse.migrate, guarded so it is safe on both backends) rather than an edit to 0.
Several processes may open the database at once: the migration runs under the store's write
lock and re-reads the version inside it, so it runs once.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from peewee import BigIntegerField, DoubleField, SmallIntegerField

from daemon.store import changes, hashes, labels, paths
from daemon.store.models import ALL_MODELS, STATE_CODES, File, Insight, SchemaVersion

if TYPE_CHECKING:
    from daemon.store.db import Store


def _create_tables(store: Store) -> None:
    store.db.create_tables(ALL_MODELS, safe=True)


def _scale_indexes(store: Store) -> None:
    """file_inode: a scan asks whether a new path is a moved file's (scan/plan.py).
    file_state_enricher_checksum: the lifecycle pass runs every tick and looks for the few
    files not `ready` under the current enricher set, not through the whole library."""
    store.execute("CREATE INDEX IF NOT EXISTS file_inode ON file (inode)")
    if _has_column(store, "file", "enricher_checksum"):  # else created at schema 8 or later
        store.execute("CREATE INDEX IF NOT EXISTS file_state_enricher_checksum"
                      " ON file (state, enricher_checksum)")


def _smaller_indexes(store: Store) -> None:
    """Three indexes that cost ~100 B a file (a sixth of the database) and served nothing
    another index does not, measured at 100k files with the mime insights:
    - file_library_id (10 B/file): (library_id, rel_path) serves every lookup by library
      and the cascade from library;
    - insight (content_hash, kind) and its partial twin WHERE is_current (58 B/file each):
      one index on (content_hash, kind, is_current) answers both kinds of query, the
      current-only ones from the index alone;
    - insight (library_id, rel_path) (28 B/file): only insights of unhashed content are
      looked up by path, so it is partial (`insight_unhashed_path`), nearly empty.
    """
    for name in ("file_library_id", "insight_content_hash_kind", "insight_current_hash_kind",
                 "insight_library_id_rel_path"):
        store.execute(f"DROP INDEX IF EXISTS {name}")
    if _has_column(store, "insight", "kind"):  # else created at schema 9 or later
        store.execute("CREATE INDEX IF NOT EXISTS insight_content_hash_kind_is_current"
                      " ON insight (content_hash, kind, is_current)")
    store.execute("CREATE INDEX IF NOT EXISTS insight_unhashed_path"
                  " ON insight (library_id, rel_path) WHERE content_hash IS NULL")


def _leaner_rows(store: Store) -> None:
    """Rows that say the same in fewer bytes: 809 -> 538 B a file on SQLite at 100k files
    after a cold scan with the mime insights and the change feed (bench/README.md has the
    breakdown per table and index):
    - enricher checksums cut to their first 10 hex digits (`models.ENRICHER_CHECKSUM_DIGITS`);
    - a hashed insight keeps no (library_id, rel_path) (`insights.located`), and the
      insight_library_id index (the foreign key's) goes: libraries are never deleted, and
      the partial insight_unhashed_path serves the look-ups by path;
    - the `mime` insight's value JSON is a label (`insights.LABELLED_KINDS`);
    - the change feed's lean rows (`changes`, `labels`), copied into a new table.
    """
    digits = 10  # what `models.ENRICHER_CHECKSUM_DIGITS` was when this migration was written
    for table in ("file", "insight"):
        if not _has_column(store, table, "enricher_checksum"):
            continue  # created at schema 8 or later: a label id
        store.execute(f"UPDATE {table} SET enricher_checksum = substr(enricher_checksum, 1, ?)"
                      " WHERE length(enricher_checksum) > ?", [digits, digits])
    store.execute("UPDATE insight SET library_id = NULL, rel_path = NULL"
                  " WHERE content_hash IS NOT NULL")
    store.execute("DROP INDEX IF EXISTS insight_library_id")
    labels.create_table(store)
    _label_mime_values(store)
    _lean_change_log(store)


def _label_mime_values(store: Store) -> None:
    """The `mime` insights' values become labels (`insights.LABELLED_KINDS`)."""
    if not _has_column(store, "insight", "kind"):
        return  # created at schema 9 or later: nothing to convert
    if "value_label" not in {column.name for column in store.db.get_columns("insight")}:
        store.execute("ALTER TABLE insight ADD COLUMN value_label INTEGER")
    insert = ("INSERT OR IGNORE INTO {labels} (text) SELECT DISTINCT value FROM insight"
              " WHERE kind = 'mime' AND value_label IS NULL" if store.is_sqlite else
              "INSERT INTO {labels} (text) SELECT DISTINCT value FROM insight"
              " WHERE kind = 'mime' AND value_label IS NULL ON CONFLICT (text) DO NOTHING")
    store.execute(insert.format(labels=labels.TABLE))
    store.execute(f"UPDATE insight SET value_label = (SELECT id FROM {labels.TABLE}"
                  " WHERE text = insight.value), value = '' WHERE kind = 'mime'"
                  " AND value_label IS NULL")


def _lean_change_log(store: Store) -> None:
    """Copy the change feed into its lean form, ids and the id sequence kept.

    Old rows keep their detail as JSON (a row with no detail label is read that way); their
    host and library become labels, their kind a code, their hash its 16 bytes."""
    table = changes.TABLE
    old_columns = {column.name for column in store.db.get_columns(table)}
    if "host_label" in old_columns:
        return
    store.execute(f"INSERT INTO {labels.TABLE} (text) SELECT host FROM {table}"
                  f" UNION SELECT library FROM {table} WHERE library IS NOT NULL"
                  " ON CONFLICT (text) DO NOTHING" if not store.is_sqlite else
                  f"INSERT OR IGNORE INTO {labels.TABLE} (text) SELECT host FROM {table}"
                  f" UNION SELECT library FROM {table} WHERE library IS NOT NULL")
    kind_code = "CASE kind " + " ".join(
        f"WHEN '{kind}' THEN {code}" for kind, code in changes.KIND_CODES.items()) + " END"
    digest = hashes.to_db_sql("hash", is_sqlite=store.is_sqlite)
    _copy_change_log(store, _lean_columns(store),
                     "id, at, host_label, library_label, kind, path, hash, detail_label, detail",
                     f"id, at, (SELECT id FROM {labels.TABLE} WHERE text = host),"
                     f" (SELECT id FROM {labels.TABLE} WHERE text = library),"
                     f" {kind_code}, path, {digest}, NULL, detail")


def _copy_change_log(store: Store, columns: str, names: str, values: str) -> None:
    """Put a copy of the change feed in its place: a new table of `columns` (their SQL),
    filled with `values` (SQL over the old table's columns) into `names`; ids and the id
    sequence kept."""
    table = changes.TABLE
    if store.is_sqlite:
        sequence = store.query("SELECT seq FROM sqlite_sequence WHERE name = ?", [table])
    else:
        store.execute(f"ALTER SEQUENCE {table}_id_seq OWNED BY NONE")
    store.execute(f"CREATE TABLE {table}_copied ({columns})")
    store.execute(f"INSERT INTO {table}_copied ({names}) SELECT {values} FROM {table}")
    store.execute(f"DROP TABLE {table}")
    store.execute(f"ALTER TABLE {table}_copied RENAME TO {table}")
    if store.is_sqlite:
        if sequence:  # AUTOINCREMENT: never hand out an id retention already dropped
            store.execute("UPDATE sqlite_sequence SET seq = max(seq, ?) WHERE name = ?",
                          [sequence[0][0], table])
            if not store.query("SELECT 1 FROM sqlite_sequence WHERE name = ?", [table]):
                store.execute("INSERT INTO sqlite_sequence (name, seq) VALUES (?, ?)",
                              [table, sequence[0][0]])
    else:
        store.execute(f"ALTER SEQUENCE {table}_id_seq OWNED BY {table}.id")
        store.execute(f"ALTER INDEX {table}_copied_pkey RENAME TO {table}_pkey")


def _lean_columns(store: Store) -> str:
    if store.is_sqlite:
        return ("id INTEGER PRIMARY KEY AUTOINCREMENT, at DOUBLE PRECISION NOT NULL,"
                " host_label INTEGER NOT NULL, library_label INTEGER, kind INTEGER NOT NULL,"
                " path TEXT, hash BLOB, detail_label INTEGER, detail TEXT")
    return (f"id BIGINT PRIMARY KEY DEFAULT nextval('{changes.TABLE}_id_seq'),"
            " at DOUBLE PRECISION NOT NULL, host_label INTEGER NOT NULL,"
            " library_label INTEGER, kind SMALLINT NOT NULL, path TEXT, hash BYTEA,"
            " detail_label INTEGER, detail TEXT")


HASHED_TABLES = ("file", "tag", "insight")


def _hashes_as_digests(store: Store) -> None:
    """Content hashes as their 16-byte digests in `file`, `tag` and `insight` (and so in
    their indexes), as the change feed already stores them (`hashes.py`), and a file's
    `path_text` '' where it is its `rel_path` decoded (`paths.py`): 538 -> ~420 B a file on
    SQLite at 100k files (bench/README.md).

    PostgreSQL: the hash columns become bytea (a rewrite of each table and its indexes; the
    file table's path texts in the same pass). SQLite keeps the declared type (a VARCHAR
    column stores a BLOB as it is: affinity never converts one) and rewrites the values in
    place; the freed pages are reused, `VACUUM` gives them back (docs/operations.md). Both
    skip what is already converted: a database created at this schema has digest columns
    from the start.
    """
    digest = hashes.to_db_sql("content_hash", is_sqlite=store.is_sqlite)
    shorter = paths.stored_sql(is_sqlite=store.is_sqlite)
    for table in HASHED_TABLES:
        if store.is_sqlite:
            store.execute(f"UPDATE {table} SET content_hash = {digest}"
                          " WHERE typeof(content_hash) = 'text'")
            continue
        [(data_type,)] = store.query(
            "SELECT data_type FROM information_schema.columns WHERE table_schema ="
            " current_schema() AND table_name = ? AND column_name = 'content_hash'", [table])
        if data_type != "bytea":
            path_text = (f", ALTER COLUMN path_text TYPE text USING CASE WHEN {shorter}"
                         " THEN '' ELSE path_text END" if table == "file" else "")
            store.execute(f"ALTER TABLE {table} ALTER COLUMN content_hash TYPE bytea"
                          f" USING {digest}{path_text}")
    if store.is_sqlite:
        store.execute(f"UPDATE file SET path_text = '' WHERE {shorter}")


def _unchecked_file_library(store: Store) -> None:
    """PostgreSQL: `file.library_id` keeps no foreign-key constraint.

    PostgreSQL checks a foreign key with a trigger per inserted row, a look-up of the library
    by id: a third of the server's time in a scan's COPY of new file rows (100,000 rows: 1.05
    s with the constraint, 0.70 s without; bench/README.md). Nothing needs it: a file row is
    only written for a library row assetd has read, and libraries are never deleted (the
    constraint's ON DELETE CASCADE never fires; migration 4 dropped the insight's index on it
    for the same reason). SQLite's check is a look-up in the page cache it already holds:
    it stays, as does every other table's.
    """
    if store.is_sqlite:
        return
    for (name,) in store.query(
            "SELECT conname FROM pg_constraint WHERE conrelid = 'file'::regclass"
            " AND contype = 'f'"):
        store.execute(f'ALTER TABLE file DROP CONSTRAINT "{name}"')


def _codes_and_labels(store: Store) -> None:
    """Texts that repeat on every row as small integers, and no `last_seen` where it is
    `first_seen` (bench/README.md has the breakdown):
    - a file's `state` as a code (`models.STATE_CODES`) and its enricher set checksum as a
      `label` id (`checksum_label`): 10 + 5 bytes of text on every row and every entry of
      the (state, checksum) index become 1 or 2; its `last_seen` NULL until the row is
      rewritten (8 bytes);
    - an insight's `source` and its enricher's checksum as label ids (`source_label`,
      `checksum_label`): 4-10 + 10 bytes a row become 2.

    PostgreSQL changes the columns' types (a rewrite of each table and its indexes, which
    also drops the dead row versions a scan's lifecycle update left). SQLite cannot change a
    column's type (a VARCHAR column would store the ids as text): each table is rebuilt
    under its model's schema, as SQLite's documentation describes, and the old table's pages
    are free for reuse (`VACUUM` gives them back, docs/operations.md). A database created at
    this schema has the new columns from the start.

    Both tables come out as today's models have them, migration 8's columns too (a rebuilt
    SQLite table has no other form): a file's seen-times as whole seconds and an insight's
    kind as a label id, which migration 8 then finds done.
    """
    if _has_column(store, "file", "enricher_checksum"):
        state_code = "CASE state " + " ".join(
            f"WHEN '{name}' THEN {code}" for name, code in STATE_CODES.items()) + " END"
        whole = _whole_seconds(store)
        _to_codes(store, File, {"state": ("state", state_code),
                                "checksum_label": ("enricher_checksum",
                                                   _label_case(store, "file",
                                                               "enricher_checksum")),
                                "first_seen": ("first_seen", whole("first_seen")),
                                "last_seen": ("last_seen", whole(
                                    "CASE WHEN last_seen = first_seen THEN NULL"
                                    " ELSE last_seen END"))},
                  renamed_indexes={"file_state_enricher_checksum": "file_state_checksum_label"})
    if _has_column(store, "insight", "enricher_checksum"):
        _to_codes(store, Insight, {
            "source_label": ("source", _label_case(store, "insight", "source")),
            "checksum_label": ("enricher_checksum",
                               _label_case(store, "insight", "enricher_checksum")),
            **_kind_label_column(store)}, renamed_indexes=_KIND_LABEL_INDEX)


def _integers_for_times_and_kinds(store: Store) -> None:
    """Times as integers where nothing reads a fraction of what is stored, and an insight's
    kind as a label id (bench/README.md has the breakdown):
    - a file's `first_seen` and `last_seen` as whole seconds (no output shows them; a
      float's 8 bytes become 4 in a SQLite row);
    - the change feed's time as the whole milliseconds it prints (`at_ms`, `changes.at_ms`
      says how they are taken): 8 bytes become 6 in each of a file's two rows of a cold
      scan, and every `changes` output stays the same;
    - an insight's kind as a `label` id (`kind_label`; `labels.insight_kind_is` in SQL):
      `mime`'s 4 bytes become 1 in the row and in the (content_hash, kind, is_current)
      index. (PostgreSQL aligns the id to 4 bytes after the 17-byte hash: its index entry
      grows from 32 to 40 bytes, ~14 B a file.)

    SQLite rebuilds the three tables: a REAL column stores a whole number in as few bytes as
    an integer, but hands it back as a float, and the copy leaves no slack in the pages (the
    old tables' pages are free for reuse, `VACUUM` gives them back). PostgreSQL changes the
    types (bigint: the same 8 bytes there as a double; the rewrite drops the dead row
    versions a scan's lifecycle update left). Each part is skipped where it is done: a
    database created at this schema, or migrated from schema 7 or older by migration 7, has
    them already.
    """
    if _column_type(store, "file", "first_seen") in ("real", "double precision"):
        whole = _whole_seconds(store)
        _to_codes(store, File, {column: (column, whole(column))
                                for column in ("first_seen", "last_seen")})
    if _has_column(store, "insight", "kind"):
        _to_codes(store, Insight, _kind_label_column(store),
                  renamed_indexes=_KIND_LABEL_INDEX)
    if _has_column(store, changes.TABLE, "at_ms"):
        return
    if store.is_sqlite:
        _copy_change_log(
            store, "id INTEGER PRIMARY KEY AUTOINCREMENT, at_ms INTEGER NOT NULL,"
            " host_label INTEGER NOT NULL, library_label INTEGER, kind INTEGER NOT NULL,"
            " path TEXT, hash BLOB, detail_label INTEGER, detail TEXT",
            "id, at_ms, host_label, library_label, kind, path, hash, detail_label, detail",
            "id, CAST(at AS INTEGER) * 1000 + CAST(round((at - CAST(at AS INTEGER))"
            " * 1000000) AS INTEGER) / 1000,"
            " host_label, library_label, kind, path, hash, detail_label, detail")
        return
    store.execute(f"ALTER TABLE {changes.TABLE} ALTER COLUMN at TYPE bigint USING"
                  " floor(at)::bigint * 1000 + round((at - floor(at)) * 1000000)::bigint / 1000")
    store.execute(f"ALTER TABLE {changes.TABLE} RENAME COLUMN at TO at_ms")


def _whole_seconds(store: Store) -> Callable[[str], str]:
    """SQL for the whole seconds of an SQL expression's epoch seconds (as `int()` cuts)."""
    return ("CAST({} AS INTEGER)" if store.is_sqlite else "trunc({})::bigint").format


def _kind_label_column(store: Store) -> dict[str, tuple[str, str]]:
    """`_to_codes`' column of an insight's kind as a label id, from its text."""
    return {"kind_label": ("kind", _label_case(store, "insight", "kind"))}


_KIND_LABEL_INDEX = {"insight_content_hash_kind_is_current":
                     "insight_content_hash_kind_label_is_current"}


def _label_case(store: Store, table: str, column: str) -> str:
    """SQL giving the label id of `table.column`'s text, every text of it made a label.

    A handful of texts (the enricher names, one checksum per enricher config ever used):
    spelled as literals, since PostgreSQL's ALTER ... USING takes no sub-select."""
    insert = ("INSERT OR IGNORE INTO {labels} (text) SELECT DISTINCT {column} FROM {table}"
              " WHERE {column} IS NOT NULL" if store.is_sqlite else
              "INSERT INTO {labels} (text) SELECT DISTINCT {column} FROM {table}"
              " WHERE {column} IS NOT NULL ON CONFLICT (text) DO NOTHING")
    store.execute(insert.format(labels=labels.TABLE, table=table, column=column))
    label_of = store.query(f"SELECT text, id FROM {labels.TABLE} WHERE text IN"
                           f" (SELECT {column} FROM {table})")
    if not label_of:
        return "NULL"
    return (f"CASE {column} " + " ".join(f"WHEN {_literal(text)} THEN {label}"
                                         for text, label in label_of) + " END")


def _to_codes(store: Store, model: type, columns: dict[str, tuple[str, str]],
              renamed_indexes: dict[str, str] | None = None) -> None:
    """Each new column from its old one (`columns`: new name -> (old name, SQL of the new
    value)); PostgreSQL renames the indexes on them (SQLite makes the model's)."""
    table = model._meta.table_name
    if store.is_sqlite:
        _rebuild_sqlite_table(store, model, {new: sql for new, (_, sql) in columns.items()})
        return
    changes = []
    for new, (old, sql) in columns.items():
        if model._meta.columns[new].null:
            changes.append(f"ALTER COLUMN {old} DROP NOT NULL")
        changes.append(f"ALTER COLUMN {old} TYPE {_pg_type(model, new)} USING {sql}")
    store.execute(f"ALTER TABLE {table} " + ", ".join(changes))
    for new, (old, _) in columns.items():
        if new != old:
            store.execute(f"ALTER TABLE {table} RENAME COLUMN {old} TO {new}")
    for old, new in (renamed_indexes or {}).items():
        store.execute(f"ALTER INDEX IF EXISTS {old} RENAME TO {new}")
    store.execute(f"ANALYZE {table}")  # the changed columns' statistics went with their type


def _pg_type(model: type, column: str) -> str:
    field = model._meta.columns[column]
    if isinstance(field, DoubleField):
        return "double precision"
    if isinstance(field, BigIntegerField):
        return "bigint"
    return "smallint" if isinstance(field, SmallIntegerField) else "integer"


def _rebuild_sqlite_table(store: Store, model: type, expressions: dict[str, str]) -> None:
    """Copy a SQLite table into a new one made from its model, each column as is or from
    its SQL expression in `expressions`, then put it and the model's indexes in its place.

    The model as it is today, as migration 0 makes it: a later migration that changes the
    table must expect its own change already there (it checks, as this one does)."""
    table = model._meta.table_name
    create, _ = store.db.get_sql_context().sql(model._schema._create_table(safe=False)).query()
    store.execute(create.replace(f'CREATE TABLE "{table}"', f'CREATE TABLE "{table}_rebuilt"',
                                 1))
    columns = [field.column_name for field in model._meta.sorted_fields]
    store.execute(f"INSERT INTO {table}_rebuilt ({', '.join(columns)}) SELECT "
                  + ", ".join(expressions.get(column, column) for column in columns)
                  + f" FROM {table}")
    store.execute(f"DROP TABLE {table}")
    store.execute(f"ALTER TABLE {table}_rebuilt RENAME TO {table}")
    for index in model._schema._create_indexes(safe=False):
        store.execute(store.db.get_sql_context().sql(index).query()[0])


def _has_column(store: Store, table: str, column: str) -> bool:
    return column in {found.name for found in store.db.get_columns(table)}


def _column_type(store: Store, table: str, column: str) -> str:
    """The column's declared type (SQLite) or its type (PostgreSQL), in lower case."""
    return next(found.data_type.lower() for found in store.db.get_columns(table)
                if found.name == column)


def _literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


MIGRATIONS: list[Callable[[Store], None]] = [_create_tables, _scale_indexes,
                                             changes.create_table, _smaller_indexes,
                                             _leaner_rows, _hashes_as_digests,
                                             _unchecked_file_library, _codes_and_labels,
                                             _integers_for_times_and_kinds]
SCHEMA_VERSION = len(MIGRATIONS)


class SchemaTooNewError(RuntimeError):
    pass


def current_version(store: Store) -> int:
    if not store.db.table_exists(SchemaVersion._meta.table_name):
        return 0
    row = SchemaVersion.select().order_by(SchemaVersion.version.desc()).first()
    return row.version if row else 0


def migrate(store: Store) -> int:
    """Apply pending migrations; returns the schema version now in force."""
    if current_version(store) == SCHEMA_VERSION:
        return SCHEMA_VERSION
    with store.write_tx():
        store.lock("assetd.migrate")
        version = current_version(store)
        if version > SCHEMA_VERSION:
            raise SchemaTooNewError(
                f"database schema is version {version}, this assetd knows up to "
                f"{SCHEMA_VERSION}: upgrade assetd"
            )
        for step in MIGRATIONS[version:]:
            step(store)
        SchemaVersion.delete().execute()
        SchemaVersion.create(version=SCHEMA_VERSION)
    return SCHEMA_VERSION
