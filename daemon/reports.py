"""Read-only views of the index: `status` and `files`."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from dataclasses import dataclass, field

from daemon.config import Config, LibraryConfig
from daemon.errors import UsageError
from daemon.meta.tags import TagIndex
from daemon.meta.verify_pass import VerifyCursor, load_cursor
from daemon.mounts import choose_watch_mode, max_user_watches
from daemon.scan.probe import probe
from daemon.service.heartbeat import decode_status
from daemon.store import Store, labels, redact_url
from daemon.store.hashes import PREFIX as HASH_PREFIX
from daemon.store.hashes import from_db, to_db
from daemon.store.models import STATE_NAMES, DaemonProcess, Library
from daemon.units import iso_utc, path_text


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


@dataclass(frozen=True)
class LibraryStatus:
    name: str
    path: str
    host: str
    online: bool
    files: int
    missing: int
    unhashed: int
    last_scan: str | None
    reason: str | None  # why it is offline: human output only
    # How it is watched (this host's running daemon's word, or what it would choose) and the
    # inotify watches it holds (None without a running daemon here); None for other hosts.
    watch: str | None = None
    watch_reason: str | None = None
    inotify_watches: int | None = None
    verify: VerifyCursor | None = None  # the scheduled verify's pass; None before the first

    def as_json(self) -> dict:
        return {"name": self.name, "path": self.path, "host": self.host, "online": self.online,
                "files": self.files, "missing": self.missing, "unhashed": self.unhashed,
                "last_scan": self.last_scan, "watch": self.watch,
                "watch_reason": self.watch_reason, "inotify_watches": self.inotify_watches,
                "verify": None if self.verify is None else {
                    "pass_started_at": iso_utc(self.verify.pass_started_at),
                    "verified": self.verify.files, "of": self.verify.of_files,
                    "mismatches": self.verify.mismatches}}


@dataclass(frozen=True)
class DaemonStatus:
    host: str
    pid: int
    started_at: str | None
    last_tick: str | None
    status: str  # starting, scanning, ...: human output only
    watches: dict = field(default_factory=dict)  # per library, as the daemon published them

    def as_json(self) -> dict:
        return {"host": self.host, "pid": self.pid, "started_at": self.started_at,
                "last_tick": self.last_tick}


@dataclass(frozen=True)
class StatusReport:
    database: str
    libraries: list[LibraryStatus]
    daemons: list[DaemonStatus]
    inotify_watches_limit: int | None

    def as_json(self) -> dict:
        return {"database": self.database,
                "libraries": [lib.as_json() for lib in self.libraries],
                "daemons": [d.as_json() for d in self.daemons],
                "inotify_watches_limit": self.inotify_watches_limit}


def status_report(store: Store, config: Config) -> StatusReport:
    counts = {
        library_id: (int(present or 0), int(missing or 0), int(unhashed or 0))
        for library_id, present, missing, unhashed in store.query(
            "SELECT library_id,"
            " SUM(CASE WHEN is_missing THEN 0 ELSE 1 END),"
            " SUM(CASE WHEN is_missing THEN 1 ELSE 0 END),"
            " SUM(CASE WHEN NOT is_missing AND content_hash IS NULL THEN 1 ELSE 0 END)"
            " FROM file GROUP BY library_id"
        )
    }
    rows = {row.name: row for row in Library.select()}
    daemons = _daemons(config)
    # This host's running daemon knows its watches; without one, what it would choose.
    local = next((d for d in daemons if d.host == config.daemon.host), None)
    libraries = []
    for lib in config.libraries:
        row = rows.get(lib.name)
        probed = probe(lib)
        libraries.append(LibraryStatus(
            lib.name, lib.path, config.daemon.host, probed.online,
            *counts.get(row.id if row else None, (0, 0, 0)),
            iso_utc(row.last_scan_at if row else None), probed.reason,
            *_watch_fields(lib, local), verify=load_cursor(store, lib.name),
        ))
    # Libraries of other hosts (or removed from this config): what the database last knew.
    configured = {lib.name for lib in config.libraries}
    for name, row in sorted(rows.items()):
        if name not in configured:
            libraries.append(LibraryStatus(
                name, row.root, row.host, row.online, *counts.get(row.id, (0, 0, 0)),
                iso_utc(row.last_scan_at), row.offline_reason, verify=load_cursor(store, name),
            ))
    return StatusReport(redact_url(config.daemon.database), libraries, daemons,
                        max_user_watches())


def _daemons(config: Config) -> list[DaemonStatus]:
    daemons = []
    for d in DaemonProcess.select().order_by(DaemonProcess.host, DaemonProcess.pid):
        if d.host == config.daemon.host and not _pid_alive(d.pid):
            continue  # a crashed daemon of this host; its row is stale
        text, watches = decode_status(d.status)
        daemons.append(DaemonStatus(d.host, d.pid, iso_utc(d.started_at), iso_utc(d.last_tick),
                                    text, watches or {}))
    return daemons


def _watch_fields(lib: LibraryConfig,
                  local_daemon: DaemonStatus | None) -> tuple[str, str, int | None]:
    """(watch, watch_reason, inotify_watches); the watches are None without a daemon here."""
    watching = local_daemon.watches.get(lib.name) if local_daemon else None
    if watching:
        return watching["mode"], watching["reason"], watching["inotify_watches"]
    mode = choose_watch_mode(lib)
    return mode.name, mode.reason, None if local_daemon is None else 0


@dataclass(frozen=True)
class FileFilter:
    library: str | None = None
    presence: str = "present"  # present | missing | all
    tag: str | None = None
    content_hash: str | None = None
    # (library name, rel_path): that file, or the files under that directory ("" = the root)
    scopes: tuple[tuple[str, bytes], ...] = ()
    errors: bool = False  # only files with a current error insight (an enricher failed)


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
    # With `files --errors`: (enricher, message) of each current error insight of its content.
    errors: list[tuple[str, str]] | None = None

    def in_scope(self, library: str, scope: bytes) -> bool:
        return library == self.library and (
            not scope or self.rel_path == scope or self.rel_path.startswith(scope + b"/"))

    def as_json(self) -> dict:
        return {
            "library": self.library, "path": path_text(self.rel_path), "size": self.size,
            "mtime_ns": self.mtime_ns, "hash": self.content_hash, "missing": self.missing,
            "missing_since": iso_utc(self.missing_since), "state": self.state,
            "tags": self.tags,
            **({} if self.errors is None else {
                "errors": [{"enricher": kind, "error": message} for kind, message in self.errors]
            }),
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
        params.append(to_db(normalize_hash(file_filter.content_hash)))
    if file_filter.scopes:
        sql, scope_params = _scope_condition(file_filter.scopes)
        where.append(sql)
        params += scope_params
    if file_filter.errors:
        # A cheap superset in SQL; the exact test (a JSON value with an "error" key) below.
        where.append("EXISTS (SELECT 1 FROM insight i WHERE i.content_hash = f.content_hash"
                     f" AND i.is_current AND {labels.insight_value('i')} LIKE ?)")
        params.append('%"error"%')
    tags = TagIndex.load(store)
    cursor = store.stream(
        "SELECT l.name, f.library_id, f.rel_path, f.size, f.mtime_ns, f.content_hash,"
        " f.is_missing, f.missing_since, f.state FROM file f JOIN library l ON l.id = f.library_id"
        f" WHERE {' AND '.join(where)} ORDER BY l.name, f.rel_path",
        params,
    )
    for name, library_id, rel_path, size, mtime_ns, digest, missing, since, state in cursor:
        rel_path, content_hash = bytes(rel_path), from_db(digest)
        file_tags = tags.for_file(library_id, rel_path, content_hash)
        if file_filter.tag is not None and file_filter.tag not in file_tags:
            continue
        errors = None
        if file_filter.errors:
            errors = enricher_errors(store, content_hash)
            if not errors:
                continue
        yield FileRow(name, rel_path, size, mtime_ns, content_hash, bool(missing), since,
                      STATE_NAMES[state], file_tags, errors)


def enricher_errors(store: Store, content_hash: str) -> list[tuple[str, str]]:
    """(enricher, message) of the current insights of this content that record a failure."""
    found = []
    for kind, value in store.query(
        f"SELECT {labels.insight_kind('insight')} AS kind_text,"
        f" {labels.insight_value('insight')} FROM insight"
        " WHERE content_hash = ? AND is_current ORDER BY kind_text",
        [to_db(content_hash)],
    ):
        parsed = json.loads(value)
        if isinstance(parsed, dict) and parsed.get("error"):
            found.append((kind, str(parsed["error"])))
    return found
