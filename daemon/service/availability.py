"""Which libraries the daemon believes online, and the log lines when that changes.

An offline library is a repeating condition: it is logged when it changes (`library.offline`
with the reason, `library.online`), never every tick. Written by the writer thread only;
`is_online` is also read by the HTTP thread (/health, /metrics): a dict lookup, safe from any
thread.
"""

from __future__ import annotations

from enum import Enum

from daemon import logs


class Change(Enum):
    NONE = "none"
    ONLINE = "online"  # came (back) online, or first seen online
    OFFLINE = "offline"  # went offline, or first seen offline


class Availability:
    def __init__(self) -> None:
        self._online: dict[str, bool] = {}

    def is_online(self, name: str) -> bool:
        return self._online.get(name, False)

    def observe(self, name: str, online: bool, reason: str | None) -> Change:
        """Record a probe result; log and return what changed."""
        before = self._online.get(name)
        self._online[name] = online
        if before == online:
            return Change.NONE
        log = logs.get_logger()
        if online:
            if before is not None:  # the initial "online" is the normal case, not news
                log.info(logs.LIBRARY_ONLINE, library=name)
            return Change.ONLINE
        log.warning(logs.LIBRARY_OFFLINE, library=name, reason=reason)
        return Change.OFFLINE
