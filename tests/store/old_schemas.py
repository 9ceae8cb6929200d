"""Tables as an older schema had them, for the migration tests.

Migration 0 creates the tables from today's models; a test of a later migration first turns
them back into the form the schema before it left them.
"""

from __future__ import annotations

from daemon.store import Store, labels
from daemon.store.models import STATE_CODES

# The `file` table of schema 7 (and before), as peewee created it on SQLite.
_SQLITE_FILE_7 = (
    'CREATE TABLE "file_7" ("id" INTEGER NOT NULL PRIMARY KEY, "library_id" INTEGER NOT NULL,'
    ' "rel_path" BLOB NOT NULL, "path_text" TEXT NOT NULL, "size" INTEGER NOT NULL,'
    ' "mtime_ns" INTEGER NOT NULL, "inode" INTEGER NOT NULL, "device" INTEGER NOT NULL,'
    ' "content_hash" BLOB, "is_missing" INTEGER NOT NULL, "missing_since" REAL,'
    ' "state" VARCHAR(255) NOT NULL, "enricher_checksum" VARCHAR(255),'
    ' "first_seen" REAL NOT NULL, "last_seen" REAL NOT NULL, FOREIGN KEY ("library_id")'
    ' REFERENCES "library" ("id") ON DELETE CASCADE)'
)
_COLUMNS = ("id", "library_id", "rel_path", "path_text", "size", "mtime_ns", "inode", "device",
            "content_hash", "is_missing", "missing_since", "state", "enricher_checksum",
            "first_seen", "last_seen")


def file_as_schema_7(store: Store) -> None:
    """`file.state` as its name and the enricher checksum as its text (`enricher_checksum`,
    VARCHAR), indexed by (state, enricher_checksum): schema 7's form, rows kept."""
    state_name = "CASE state " + " ".join(
        f"WHEN {code} THEN '{name}'" for name, code in STATE_CODES.items()) + " END"
    has_labels = store.db.table_exists(labels.TABLE)  # since schema 5
    checksum = (f"(SELECT text FROM {labels.TABLE} WHERE id = checksum_label)" if has_labels
                else "NULL")
    with store.write_tx():
        if store.is_sqlite:
            store.execute(_SQLITE_FILE_7)
            values = {"state": state_name, "enricher_checksum": checksum}
            store.execute(f"INSERT INTO file_7 ({', '.join(_COLUMNS)}) SELECT "
                          + ", ".join(values.get(column, column) for column in _COLUMNS)
                          + " FROM file")
            store.execute("DROP TABLE file")
            store.execute("ALTER TABLE file_7 RENAME TO file")
            store.execute('CREATE INDEX "file_content_hash" ON "file" ("content_hash")')
            store.execute('CREATE UNIQUE INDEX "file_library_id_rel_path" ON "file"'
                          ' ("library_id", "rel_path")')
            store.execute('CREATE INDEX "file_inode" ON "file" ("inode")')
        else:
            texts = store.query(f"SELECT id, text FROM {labels.TABLE} WHERE id IN"
                                " (SELECT checksum_label FROM file)") if has_labels else []
            text_of = ("CASE checksum_label " + " ".join(
                f"WHEN {label} THEN '{text}'" for label, text in texts) + " END"
                if texts else "NULL")
            store.execute("DROP INDEX file_state_checksum_label")
            store.execute(f"ALTER TABLE file ALTER COLUMN state TYPE varchar(255)"
                          f" USING {state_name}, ALTER COLUMN checksum_label TYPE varchar(255)"
                          f" USING {text_of}")
            store.execute("ALTER TABLE file RENAME COLUMN checksum_label TO enricher_checksum")
        store.execute("CREATE INDEX file_state_enricher_checksum"
                      " ON file (state, enricher_checksum)")
