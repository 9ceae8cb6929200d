"""The `daemon` table: one row per running daemon (host, pid, started_at, last_tick).

`assetd status` lists these rows. A clean exit deletes the row; a crashed daemon's row stays
until a daemon with the same host and pid starts (status hides rows of dead local pids).
"""

from __future__ import annotations

import time

from daemon.store import Store
from daemon.store.models import DaemonProcess


def register(store: Store, host: str, pid: int) -> float:
    started_at = time.time()
    with store.write_tx():
        _delete(host, pid)
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
