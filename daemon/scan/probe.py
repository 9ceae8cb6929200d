"""Is a library online? Decided before anything may be marked missing.

An unplugged USB disk or an unmounted NAS share must look like "offline", never like
"every file was deleted": the root must exist, be a directory, hold the marker file when
one is configured, and be a mount point when `require_mount` is set.
"""

from __future__ import annotations

import os
import stat
from typing import NamedTuple

from daemon.config import LibraryConfig


class Probe(NamedTuple):
    online: bool
    reason: str | None


def probe(library: LibraryConfig) -> Probe:
    try:
        st = os.stat(library.path)
    except FileNotFoundError:
        return Probe(False, f"root {library.path} does not exist")
    except OSError as exc:
        return Probe(False, f"root {library.path} cannot be read: {exc.strerror or exc}")
    if not stat.S_ISDIR(st.st_mode):
        return Probe(False, f"root {library.path} is not a directory")
    if library.require_mount and not os.path.ismount(library.path):
        return Probe(False, f"root {library.path} is not a mount point (require_mount)")
    if library.marker and not os.path.exists(os.path.join(library.path, library.marker)):
        return Probe(False, f"marker {library.marker} missing in {library.path}")
    try:
        with os.scandir(library.path) as entries:
            next(entries, None)  # readable? (a stale NFS handle fails here, not in stat)
    except OSError as exc:
        return Probe(False, f"root {library.path} cannot be listed: {exc.strerror or exc}")
    return Probe(True, None)
