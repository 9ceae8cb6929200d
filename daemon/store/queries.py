"""Small, atomic queries the services compose: libraries, file snapshots, scan runs."""

from __future__ import annotations

import json
import time

from peewee import IntegrityError

from daemon import logs
from daemon.config import LibraryConfig
from daemon.scan.plan import DbRow
from daemon.store.db import Store
from daemon.store.models import File, Library, ScanRun

SCAN_RUNS_KEPT = 200
_SNAPSHOT_COLUMNS = (
    "id, rel_path, size, mtime_ns, inode, device, content_hash, is_missing, state"
)


def get_library(name: str) -> Library | None:
    return Library.get_or_none(Library.name == name)


def foreign_libraries(names: list[str], host: str) -> list[Library]:
    """The libraries among `names` that another host owns."""
    if not names:
        return []
    return list(Library.select().where(Library.name.in_(names) & (Library.host != host))
                .order_by(Library.name))


def adopt_library(store: Store, library: LibraryConfig, host: str) -> Library | None:
    """Make `host` the owner of the library (root from this host's config); rows, tags and
    insights are untouched. None when the index has no such library."""
    with store.write_tx():
        row = get_library(library.name)
        if row is not None:
            Library.update(root=library.path, host=host).where(Library.id == row.id).execute()
    return row


def ensure_library(store: Store, library: LibraryConfig, host: str) -> Library:
    """The library's row, created or updated from the config (name is the identity).

    A SQLite index belongs to one machine: a library of another host name there is this
    machine renamed, and is taken over (`library.adopted`). On PostgreSQL the callers refuse
    another host's library before they get here (`libraries.check_owned`).
    """
    row = get_library(library.name)
    if row is None:
        try:
            with store.write_tx():
                return Library.create(
                    name=library.name, root=library.path, host=host, created_at=time.time()
                )
        except IntegrityError:  # another process created it first
            row = get_library(library.name)
    if row.host != host:
        if not store.is_sqlite:
            raise RuntimeError(f"library {library.name} belongs to host {row.host}")
        logs.get_logger().warning(logs.LIBRARY_ADOPTED, library=library.name,
                                  previous_host=row.host, host=host,
                                  reason="the host name changed on a SQLite index")
    if (row.root, row.host) != (library.path, host):
        with store.write_tx():
            Library.update(root=library.path, host=host).where(Library.id == row.id).execute()
        row.root, row.host = library.path, host
    return row


def scope_condition(scopes: list[bytes]) -> tuple[str, list]:
    """SQL for "rel_path is one of these paths or under one of these directories".

    A range on the raw bytes uses the (library_id, rel_path) index: every path under
    `dir` sorts between `dir/` and `dir0` ('0' is the byte after '/').
    """
    if not scopes or b"" in scopes:
        return "", []
    clauses, params = [], []
    for scope in scopes:
        clauses.append("(rel_path = ? OR (rel_path >= ? AND rel_path < ?))")
        params += [scope, scope + b"/", scope + b"0"]
    return " AND (" + " OR ".join(clauses) + ")", params


def file_snapshot(store: Store, library_id: int, scopes: list[bytes]) -> dict[bytes, DbRow]:
    where, params = scope_condition(scopes)
    rows = store.query(
        f"SELECT {_SNAPSHOT_COLUMNS} FROM file WHERE library_id = ?{where}",
        [library_id, *params],
    )
    snapshot = {}
    for r in rows:
        rel_path = bytes(r[1])
        snapshot[rel_path] = DbRow(
            r[0], rel_path, r[2], r[3], r[4], r[5], r[6], bool(r[7]), r[8]
        )
    return snapshot


def count_present(library_id: int) -> int:
    return File.select().where((File.library == library_id) & ~File.is_missing).count()


def record_scan(
    store: Store,
    library_id: int,
    *,
    host: str,
    started_at: float,
    finished_at: float,
    status: str,
    online: bool,
    reason: str | None,
    scope: str,
    stats: dict[str, int],
) -> None:
    with store.write_tx():
        ScanRun.create(
            library=library_id, host=host, started_at=started_at, finished_at=finished_at,
            status=status, online=online, reason=reason, scope=scope, stats=json.dumps(stats),
        )
        # Every watcher batch is a scan: keep the recent history, not one row per event.
        store.execute(
            "DELETE FROM scan_run WHERE library_id = ? AND id < (SELECT id FROM scan_run"
            " WHERE library_id = ? ORDER BY id DESC LIMIT 1 OFFSET ?)",
            [library_id, library_id, SCAN_RUNS_KEPT - 1],
        )
        update = {Library.online: online, Library.offline_reason: reason}
        if online:
            update[Library.last_scan_at] = finished_at
        Library.update(update).where(Library.id == library_id).execute()


def set_library_online(store: Store, library_id: int, online: bool, reason: str | None) -> None:
    with store.write_tx():
        Library.update(online=online, offline_reason=reason).where(
            Library.id == library_id
        ).execute()
