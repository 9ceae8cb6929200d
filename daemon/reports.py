"""Read-only views of the index: `status` and `files`."""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass

from daemon.config import Config, LibraryConfig
from daemon.errors import UsageError
from daemon.meta.tags import TagIndex
from daemon.mounts import choose_watch_mode, max_user_watches
from daemon.scan.apply import path_text
from daemon.scan.hash import HASH_PREFIX
from daemon.scan.probe import probe
from daemon.service.heartbeat import decode_status
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
    daemons = _daemons(config)
    # This host's running daemon knows its watches; without one, what it would choose.
    local = next((d for d in daemons if d["host"] == config.daemon.host), None)
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
            **_watch_fields(lib, local),
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
            "watch": None, "watch_reason": None, "inotify_watches": None,
            "_reason": row.offline_reason,
        })
    return {"database": redact_url(config.daemon.database), "libraries": libraries,
            "daemons": daemons, "inotify_watches_limit": max_user_watches()}


def _daemons(config: Config) -> list[dict]:
    daemons = []
    for d in DaemonProcess.select().order_by(DaemonProcess.host, DaemonProcess.pid):
        if d.host == config.daemon.host and not _pid_alive(d.pid):
            continue  # a crashed daemon of this host; its row is stale
        text, watches = decode_status(d.status)
        daemons.append({"host": d.host, "pid": d.pid, "started_at": iso_utc(d.started_at),
                        "last_tick": iso_utc(d.last_tick), "_status": text,
                        "_watches": watches})
    return daemons


def _watch_fields(lib: LibraryConfig, local_daemon: dict | None) -> dict:
    """`watch`, `watch_reason`, `inotify_watches` (null without a running daemon here)."""
    watching = (local_daemon or {}).get("_watches", {}).get(lib.name)
    if watching:
        return {"watch": watching["mode"], "watch_reason": watching["reason"],
                "inotify_watches": watching["inotify_watches"]}
    mode = choose_watch_mode(lib)
    return {"watch": mode.name, "watch_reason": mode.reason,
            "inotify_watches": None if local_daemon is None else 0}


def public(obj: dict) -> dict:
    """Drop the human-only fields (prefixed `_`) from a report dict for --json."""
    return {k: v for k, v in obj.items() if not k.startswith("_")}


@dataclass(frozen=True)
class FileFilter:
    library: str | None = None
    presence: str = "present"  # present | missing | all
    tag: str | None = None
    content_hash: str | None = None


def normalize_hash(value: str) -> str:
    value = value.strip().lower()
    digits = value.removeprefix(HASH_PREFIX)
    if len(digits) != 32 or any(c not in "0123456789abcdef" for c in digits):
        raise UsageError(f"{value!r} is not a content hash (xxh128: and 32 hex digits)")
    return HASH_PREFIX + digits


def list_files(store: Store, file_filter: FileFilter) -> Iterator[dict]:
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
        yield {
            "library": name, "path": path_text(rel_path), "size": size, "mtime_ns": mtime_ns,
            "hash": content_hash, "missing": bool(missing), "missing_since": iso_utc(since),
            "state": state, "tags": file_tags,
        }
