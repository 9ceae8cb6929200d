"""The `daemon` table: one row per running daemon (host, pid, started_at, last_tick).

`assetd status` lists these rows. One daemon per (host, database): `register` takes the
store's daemon lock first, so every other row of the same host belongs to a daemon that died
(SIGKILL, power loss) and is deleted then. A clean exit deletes its own row.

The `status` text also carries what only the running daemon knows, for `status --json`: each
watched library's watch mode and the inotify watches it holds. It is a JSON object
(`{"text": ..., "watches": {NAME: {"mode", "reason", "inotify_watches"}}}`) so no schema
change is needed; a plain text (an older daemon) still reads as the text alone.
"""

from __future__ import annotations

import json
import time
from typing import Any

from daemon.errors import UsageError
from daemon.store import Store
from daemon.store.models import DaemonProcess


class DaemonRunningError(UsageError):
    """Another daemon of this host already runs against this database."""


def register(store: Store, host: str, pid: int) -> float:
    if not store.try_daemon_lock(host):
        running = (DaemonProcess.select(DaemonProcess.pid)
                   .where(DaemonProcess.host == host).order_by(DaemonProcess.id.desc()).first())
        raise DaemonRunningError(
            f"a daemon for host {host} already runs against this database"
            + (f" (pid {running.pid})" if running else "")
            + ": stop it first, or give this one another [daemon] host"
        )
    started_at = time.time()
    with store.write_tx():
        DaemonProcess.delete().where(DaemonProcess.host == host).execute()  # dead ones
        DaemonProcess.create(host=host, pid=pid, started_at=started_at, last_tick=None,
                             status="starting")
    return started_at


def beat(store: Store, host: str, pid: int, status: str) -> None:
    """A tick finished."""
    _update(store, host, pid, last_tick=time.time(), status=status)


def set_status(store: Store, host: str, pid: int, status: str) -> None:
    _update(store, host, pid, status=status)


def _update(store: Store, host: str, pid: int, **fields) -> None:
    with store.write_tx():
        DaemonProcess.update(**fields).where(
            (DaemonProcess.host == host) & (DaemonProcess.pid == pid)
        ).execute()


def unregister(store: Store, host: str, pid: int) -> None:
    with store.write_tx():
        _delete(host, pid)


def _delete(host: str, pid: int) -> None:
    DaemonProcess.delete().where(
        (DaemonProcess.host == host) & (DaemonProcess.pid == pid)
    ).execute()


def encode_status(text: str, watches: dict[str, dict[str, Any]]) -> str:
    return json.dumps({"text": text, "watches": watches}, sort_keys=True)


def decode_status(raw: str) -> tuple[str, dict[str, dict[str, Any]]]:
    """(the human text, the watches by library) of a heartbeat's `status`."""
    if raw.startswith("{"):
        try:
            decoded = json.loads(raw)
            return str(decoded.get("text", "")), dict(decoded.get("watches") or {})
        except (ValueError, AttributeError):
            pass
    return raw, {}
