"""Read-only views of the index: `status` and `files`."""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass

from daemon.config import Config
from daemon.errors import UsageError
from daemon.meta.tags import TagIndex
from daemon.scan.apply import path_text
from daemon.scan.hash import HASH_PREFIX
from daemon.scan.probe import probe
from daemon.store import Store, redact_url
from daemon.store.models import DaemonProcess, Library
from daemon.units import iso_utc


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def status_report(store: Store, config: Config) -> dict:
    counts = {
        library_id: (present, missing, unhashed)
        for library_id, present, missing, unhashed in store.query(
            "SELECT library_id,"
            " SUM(CASE WHEN is_missing THEN 0 ELSE 1 END),"
            " SUM(CASE WHEN is_missing THEN 1 ELSE 0 END),"
            " SUM(CASE WHEN NOT is_missing AND content_hash IS NULL THEN 1 ELSE 0 END)"
            " FROM file GROUP BY library_id"
        )
    }
    rows = {row.name: row for row in Library.select()}
    libraries = []
    configured = {lib.name for lib in config.libraries}
    for lib in config.libraries:
        row = rows.get(lib.name)
        probed = probe(lib)
        present, missing, unhashed = counts.get(row.id, (0, 0, 0)) if row else (0, 0, 0)
        libraries.append({
            "name": lib.name, "path": lib.path, "host": config.daemon.host,
            "online": probed.online, "files": int(present or 0), "missing": int(missing or 0),
            "unhashed": int(unhashed or 0), "last_scan": iso_utc(row.last_scan_at if row else None),
            "_reason": probed.reason,
        })
    # Libraries of other hosts (or removed from this config): what the database last knew.
    for name, row in sorted(rows.items()):
        if name in configured:
            continue
        present, missing, unhashed = counts.get(row.id, (0, 0, 0))
        libraries.append({
            "name": name, "path": row.root, "host": row.host, "online": row.online,
            "files": int(present or 0), "missing": int(missing or 0),
            "unhashed": int(unhashed or 0), "last_scan": iso_utc(row.last_scan_at),
            "_reason": row.offline_reason,
        })
    daemons = []
    for d in DaemonProcess.select().order_by(DaemonProcess.host, DaemonProcess.pid):
        if d.host == config.daemon.host and not _pid_alive(d.pid):
            continue  # a crashed daemon of this host; its row is stale
        daemons.append({"host": d.host, "pid": d.pid, "started_at": iso_utc(d.started_at),
                        "last_tick": iso_utc(d.last_tick), "_status": d.status})
    return {"database": redact_url(config.daemon.database), "libraries": libraries,
            "daemons": daemons}


def public(obj: dict) -> dict:
    """Drop the human-only fields (prefixed `_`) from a report dict for --json."""
    return {k: v for k, v in obj.items() if not k.startswith("_")}


@dataclass(frozen=True)
class FileFilter:
    library: str | None = None
    presence: str = "present"  # present | missing | all
    tag: str | None = None
    content_hash: str | None = None
    # (library name, rel_path): that file, or the files under that directory ("" = the root)
    scopes: tuple[tuple[str, bytes], ...] = ()


@dataclass(frozen=True)
class FileRow:
    """One file as `files` shows it; `rel_path` keeps the exact bytes of its name."""

    library: str
    rel_path: bytes
    size: int
    mtime_ns: int
    content_hash: str | None
    missing: bool
    missing_since: float | None
    state: str
    tags: list[str]

    def in_scope(self, library: str, scope: bytes) -> bool:
        return library == self.library and (
            not scope or self.rel_path == scope or self.rel_path.startswith(scope + b"/"))

    def as_json(self) -> dict:
        return {
            "library": self.library, "path": path_text(self.rel_path), "size": self.size,
            "mtime_ns": self.mtime_ns, "hash": self.content_hash, "missing": self.missing,
            "missing_since": iso_utc(self.missing_since), "state": self.state,
            "tags": self.tags,
        }


def normalize_hash(value: str) -> str:
    value = value.strip().lower()
    digits = value.removeprefix(HASH_PREFIX)
    if len(digits) != 32 or any(c not in "0123456789abcdef" for c in digits):
        raise UsageError(f"{value!r} is not a content hash (xxh128: and 32 hex digits)")
    return HASH_PREFIX + digits


def _scope_condition(scopes: tuple[tuple[str, bytes], ...]) -> tuple[str, list]:
    """Each scope is a file, or the files under a directory: a byte range on rel_path
    (every path under `dir` sorts between `dir/` and `dir0`, '0' being the byte after '/')."""
    clauses, params = [], []
    for library, scope in scopes:
        if not scope:
            clauses.append("l.name = ?")
            params.append(library)
            continue
        clauses.append("(l.name = ? AND (f.rel_path = ? OR (f.rel_path >= ? AND f.rel_path < ?)))")
        params += [library, scope, scope + b"/", scope + b"0"]
    return "(" + " OR ".join(clauses) + ")", params


def list_files(store: Store, file_filter: FileFilter) -> Iterator[FileRow]:
    where, params = ["1 = 1"], []
    if file_filter.library:
        library = Library.get_or_none(Library.name == file_filter.library)
        if library is None:
            raise UsageError(f"unknown library {file_filter.library!r}")
        where.append("f.library_id = ?")
        params.append(library.id)
    if file_filter.presence == "present":
        where.append("NOT f.is_missing")
    elif file_filter.presence == "missing":
        where.append("f.is_missing")
    if file_filter.content_hash:
        where.append("f.content_hash = ?")
        params.append(normalize_hash(file_filter.content_hash))
    if file_filter.scopes:
        sql, scope_params = _scope_condition(file_filter.scopes)
        where.append(sql)
        params += scope_params
    tags = TagIndex.load(store)
    cursor = store.execute(
        "SELECT l.name, f.library_id, f.rel_path, f.size, f.mtime_ns, f.content_hash,"
        " f.is_missing, f.missing_since, f.state FROM file f JOIN library l ON l.id = f.library_id"
        f" WHERE {' AND '.join(where)} ORDER BY l.name, f.rel_path",
        params,
    )
    for name, library_id, rel_path, size, mtime_ns, content_hash, missing, since, state in cursor:
        rel_path = bytes(rel_path)
        file_tags = tags.for_file(library_id, rel_path, content_hash)
        if file_filter.tag is not None and file_filter.tag not in file_tags:
            continue
        yield FileRow(name, rel_path, size, mtime_ns, content_hash, bool(missing), since, state,
                      file_tags)
