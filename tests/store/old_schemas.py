"""Tables as an older schema had them, for the migration tests.

Migration 0 creates the tables from today's models; a test of a later migration first turns
them back into the form the schema before it left them, rows kept.
"""

from __future__ import annotations

from collections.abc import Callable

from daemon.store import Store, changes, deferred_indexes, labels, migrations
from daemon.store.models import STATE_CODES, File, Insight

# Schema 7's tables as peewee created them on SQLite (and their indexes), old column names.
_SQLITE_FILE_7 = (
    'CREATE TABLE "file_7" ("id" INTEGER NOT NULL PRIMARY KEY, "library_id" INTEGER NOT NULL,'
    ' "rel_path" BLOB NOT NULL, "path_text" TEXT NOT NULL, "size" INTEGER NOT NULL,'
    ' "mtime_ns" INTEGER NOT NULL, "inode" INTEGER NOT NULL, "device" INTEGER NOT NULL,'
    ' "content_hash" BLOB, "is_missing" INTEGER NOT NULL, "missing_since" REAL,'
    ' "state" VARCHAR(255) NOT NULL, "enricher_checksum" VARCHAR(255),'
    ' "first_seen" REAL NOT NULL, "last_seen" REAL NOT NULL, FOREIGN KEY ("library_id")'
    ' REFERENCES "library" ("id") ON DELETE CASCADE)'
)
_FILE_INDEXES_7 = (
    'CREATE INDEX "file_content_hash" ON "file" ("content_hash")',
    'CREATE UNIQUE INDEX "file_library_id_rel_path" ON "file" ("library_id", "rel_path")',
    'CREATE INDEX "file_inode" ON "file" ("inode")',
)
_SQLITE_INSIGHT_7 = (
    'CREATE TABLE "insight_7" ("id" INTEGER NOT NULL PRIMARY KEY, "content_hash" BLOB,'
    ' "library_id" INTEGER, "rel_path" BLOB, "kind" VARCHAR(255) NOT NULL,'
    ' "value" TEXT NOT NULL, "value_label" INTEGER, "generated_at" REAL NOT NULL,'
    ' "is_current" INTEGER NOT NULL, "source" VARCHAR(255) NOT NULL,'
    ' "enricher_checksum" VARCHAR(255), FOREIGN KEY ("library_id") REFERENCES "library" ("id")'
    ' ON DELETE CASCADE)'
)
_INSIGHT_INDEXES_7 = (
    'CREATE INDEX "insight_content_hash_kind_is_current" ON "insight"'
    ' ("content_hash", "kind", "is_current")',
    'CREATE INDEX "insight_unhashed_path" ON "insight" ("library_id", "rel_path")'
    ' WHERE content_hash IS NULL',
)


# A change's time's fraction below the millisecond, by id (`as_schema_8`): none changes the
# millisecond the feed prints.
SUB_MS_FRACTIONS = (0.0, 0.0004, 0.000999)
_FEED_COLUMNS = "id, {at}, host_label, library_label, kind, path, hash, detail_label, detail"


def outputs(env, paths: list[str]) -> dict:
    """What a migration must leave byte for byte: the commands' JSON, and the insights
    of `paths`."""
    return {
        "files": env.cli("files", "--all", "--json").stdout,
        "status": env.cli("status", "--json").stdout,
        "changes": env.cli("changes", "--json").stdout,
        "insights": [env.cli("insight", "show", "--history", path, "--json").stdout
                     for path in paths],
    }


def reopened_as(db_url: str, version: int, as_schema: Callable[[Store], None],
                monkeypatch) -> Store:
    """The index at `db_url` turned back into schema `version`'s form by `as_schema`, marked
    so, and opened as that version's assetd would open it (no migration runs)."""
    store = Store(db_url)
    as_schema(store)
    with store.write_tx():
        store.execute("UPDATE schema_version SET version = ?", [version])
    store.close()
    with monkeypatch.context() as patch:
        patch.setattr(migrations, "MIGRATIONS", migrations.MIGRATIONS[:version])
        patch.setattr(migrations, "SCHEMA_VERSION", version)
        # Nor does it build today's deferred indexes (they may name today's columns).
        patch.setattr(deferred_indexes, "ensure", lambda store: None)
        return Store(db_url)


def as_schema_8(store: Store, sub_ms: tuple[float, ...] = SUB_MS_FRACTIONS) -> None:
    """A file's `first_seen` and `last_seen` and the change feed's time (`at`) as float
    seconds, an insight's kind as text: schema 8's form. Each time gets a fraction, as
    `time.time()` gave it: `first_seen` a quarter second and `last_seen` three (a rewritten
    row's is then later, as a float's was), a change's one of `sub_ms` by id (id %
    len(sub_ms))."""
    has_labels = store.db.table_exists(labels.TABLE)  # since schema 5; no insight before
    kind_text = f"(SELECT text FROM {labels.TABLE} WHERE id = kind_label)" if has_labels else "NULL"
    with store.write_tx():
        if store.is_sqlite:
            _sqlite_table_8(store, File, {'"first_seen" INTEGER': '"first_seen" REAL',
                                          '"last_seen" INTEGER': '"last_seen" REAL'},
                            {"first_seen": "first_seen + 0.25", "last_seen": "last_seen + 0.75"})
            _sqlite_table_8(store, Insight, {'"kind_label" INTEGER': '"kind" VARCHAR(255)'},
                            {"kind": kind_text}, _INSIGHT_INDEXES_7)
        else:
            store.execute("ALTER TABLE file ALTER COLUMN first_seen TYPE double precision"
                          " USING first_seen + 0.25, ALTER COLUMN last_seen"
                          " TYPE double precision USING last_seen + 0.75")
            kinds = store.query(f"SELECT id, text FROM {labels.TABLE} WHERE id IN"
                                " (SELECT kind_label FROM insight)") if has_labels else []
            store.execute("ALTER TABLE insight ALTER COLUMN kind_label TYPE varchar(255) USING "
                          + ("CASE kind_label " + " ".join(
                              f"WHEN {label} THEN '{text}'" for label, text in kinds) + " END"
                             if kinds else "NULL"))
            store.execute("ALTER TABLE insight RENAME COLUMN kind_label TO kind")
            store.execute("ALTER INDEX insight_content_hash_kind_label_is_current"
                          " RENAME TO insight_content_hash_kind_is_current")
        if "at_ms" in {column.name for column in store.db.get_columns(changes.TABLE)}:
            fraction = f"CASE id - id / {len(sub_ms)} * {len(sub_ms)} " + " ".join(
                f"WHEN {i} THEN {f!r}" for i, f in enumerate(sub_ms)) + " END"
            migrations._copy_change_log(
                store, migrations._lean_columns(store), _FEED_COLUMNS.format(at="at"),
                _FEED_COLUMNS.format(at=f"at_ms / 1000.0 + {fraction}"))


def _sqlite_table_8(store: Store, model: type, columns_8: dict[str, str],
                    values: dict[str, str], indexes: tuple[str, ...] | None = None) -> None:
    """A SQLite table rebuilt as today's model makes it but for `columns_8` (today's column
    definition -> schema 8's), each column from its SQL in `values` or as it is; its indexes
    are `indexes` or the model's."""
    table = model._meta.table_name
    create, _ = store.db.get_sql_context().sql(model._schema._create_table(safe=False)).query()
    for today, then in columns_8.items():
        create = create.replace(today, then, 1)
    if indexes is None:
        indexes = tuple(store.db.get_sql_context().sql(index).query()[0]
                        for index in model._schema._create_indexes(safe=False))
    _sqlite_rebuild(store, table,
                    create.replace(f'CREATE TABLE "{table}"', f'CREATE TABLE "{table}_8"', 1),
                    f"{table}_8", values, indexes)


def _sqlite_rebuild(store: Store, table: str, create_old: str, old_table: str,
                    values: dict[str, str], indexes: tuple[str, ...]) -> None:
    """Replace SQLite's `table` by `create_old` (which names it `old_table`), each column
    copied as `values` says (else as it is), and create `indexes`."""
    columns = _sqlite_columns(create_old)
    store.execute(create_old)
    store.execute(f"INSERT INTO {old_table} ({', '.join(columns)}) SELECT "
                  + ", ".join(values.get(column, column) for column in columns)
                  + f" FROM {table}")
    store.execute(f"DROP TABLE {table}")
    store.execute(f"ALTER TABLE {old_table} RENAME TO {table}")
    for index in indexes:
        store.execute(index)


def as_schema_7(store: Store) -> None:
    """A file's state as its name, its enricher checksum as text (`enricher_checksum`,
    indexed by (state, enricher_checksum)) and its `last_seen` always set; an insight's
    `source` and `enricher_checksum` as text: schema 7's form (and schema 8's times)."""
    as_schema_8(store)
    state_name = "CASE state " + " ".join(
        f"WHEN {code} THEN '{name}'" for name, code in STATE_CODES.items()) + " END"
    with store.write_tx():
        _as_text(store, "file", {"enricher_checksum": "checksum_label"},
                 {"state": (state_name, "varchar(255)"),
                  "last_seen": ("COALESCE(last_seen, first_seen)", "double precision")},
                 _SQLITE_FILE_7, _FILE_INDEXES_7)
        if not store.is_sqlite:
            store.execute("ALTER TABLE file ALTER COLUMN last_seen SET NOT NULL")
        if not store.is_sqlite:
            store.execute("DROP INDEX file_state_checksum_label")
        store.execute("CREATE INDEX file_state_enricher_checksum"
                      " ON file (state, enricher_checksum)")
        _as_text(store, "insight", {"source": "source_label",
                                    "enricher_checksum": "checksum_label"},
                 {}, _SQLITE_INSIGHT_7, _INSIGHT_INDEXES_7)


def _as_text(store: Store, table: str, labelled: dict[str, str],
             other: dict[str, tuple[str, str]], sqlite_table: str,
             sqlite_indexes: tuple[str, ...]) -> None:
    """`labelled`: old text column -> today's label column; `other`: column -> (SQL of its
    old value, PostgreSQL type)."""
    has_labels = store.db.table_exists(labels.TABLE)  # since schema 5
    if store.is_sqlite:
        values = {**{old: f"(SELECT text FROM {labels.TABLE} WHERE id = {new})"
                     if has_labels else "NULL" for old, new in labelled.items()},
                  **{column: sql for column, (sql, _) in other.items()}}
        _sqlite_rebuild(store, table, sqlite_table, f"{table}_7", values, sqlite_indexes)
        return
    changes = [f"ALTER COLUMN {column} TYPE {pg_type} USING {sql}"
               for column, (sql, pg_type) in other.items()]
    for new in labelled.values():
        texts = store.query(f"SELECT id, text FROM {labels.TABLE} WHERE id IN"
                            f" (SELECT {new} FROM {table})") if has_labels else []
        text_of = ("CASE " + new + " " + " ".join(
            f"WHEN {label} THEN '{text}'" for label, text in texts) + " END"
            if texts else "NULL")
        changes.append(f"ALTER COLUMN {new} TYPE varchar(255) USING {text_of}")
    store.execute(f"ALTER TABLE {table} " + ", ".join(changes))
    for old, new in labelled.items():
        store.execute(f"ALTER TABLE {table} RENAME COLUMN {new} TO {old}")


def _sqlite_columns(create_table: str) -> list[str]:
    body = create_table[create_table.index("(") + 1:create_table.index("FOREIGN KEY")]
    return [part.split('"')[1] for part in body.split(",") if part.strip()]
