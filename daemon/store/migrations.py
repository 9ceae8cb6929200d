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

from daemon.store import changes
from daemon.store.models import ALL_MODELS, SchemaVersion

if TYPE_CHECKING:
    from daemon.store.db import Store


def _create_tables(store: Store) -> None:
    store.db.create_tables(ALL_MODELS, safe=True)


def _scale_indexes(store: Store) -> None:
    """file_inode: a scan asks whether a new path is a moved file's (scan/plan.py).
    file_state_enricher_checksum: the lifecycle pass runs every tick and looks for the few
    files not `ready` under the current enricher set, not through the whole library."""
    store.execute("CREATE INDEX IF NOT EXISTS file_inode ON file (inode)")
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
    store.execute("CREATE INDEX IF NOT EXISTS insight_content_hash_kind_is_current"
                  " ON insight (content_hash, kind, is_current)")
    store.execute("CREATE INDEX IF NOT EXISTS insight_unhashed_path"
                  " ON insight (library_id, rel_path) WHERE content_hash IS NULL")


MIGRATIONS: list[Callable[[Store], None]] = [_create_tables, _scale_indexes,
                                             changes.create_table, _smaller_indexes]
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
