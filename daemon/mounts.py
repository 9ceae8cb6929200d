"""The kernel's mount table, the watch mode it implies for a library root, the watch limit.

inotify hears about a change only when it passes through this kernel's VFS. On a network or
cluster filesystem (NFS, SMB/CIFS, 9p, Ceph, GlusterFS) or a FUSE mount (sshfs, rclone,
bindfs: the FUSE server writes behind the kernel's back) a change made by another machine, or
below the FUSE server, raises no event at all, and the index silently goes stale. So with
`watch = "auto"` such roots are polled, judged by the filesystem type of the mount that holds
the root: the longest mount point in /proc/self/mountinfo that prefixes the root's realpath.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from typing import NamedTuple

from daemon.config import LibraryConfig

MOUNTINFO = "/proc/self/mountinfo"
# One watch per watched directory, for every inotify instance of the user together.
MAX_USER_WATCHES = "/proc/sys/fs/inotify/max_user_watches"

# Filesystem types whose changes can come from elsewhere (other machines, a FUSE server).
REMOTE_FS_TYPES = frozenset({
    "nfs", "nfs4", "cifs", "smb3", "smbfs", "ncpfs", "9p", "ceph", "glusterfs", "afs",
    "coda", "lustre", "gpfs", "beegfs", "ocfs2", "gfs2", "davfs", "vboxsf", "virtiofs", "fuse",
})
# FUSE types are "fuse.<server>" (fuse.sshfs, fuse.rclone, fuse.bindfs ...), except "fuseblk":
# a local block device (ntfs-3g, exfat) whose every write goes through this kernel.
FUSE_PREFIX = "fuse."
_OCTAL_ESCAPE = re.compile(r"\\([0-7]{3})")


def max_user_watches() -> int | None:
    """The kernel's fs.inotify.max_user_watches (None where it cannot be read)."""
    try:
        with open(MAX_USER_WATCHES, encoding="ascii") as f:
            return int(f.read())
    except (OSError, ValueError):
        return None


class Mount(NamedTuple):
    mount_point: str
    fs_type: str  # "fuse.sshfs", or plain "fuse" where the FUSE server set no subtype
    source: str


@dataclass(frozen=True)
class WatchMode:
    polling: bool
    reason: str

    @property
    def name(self) -> str:
        return "polling" if self.polling else "inotify"


def parse_mountinfo(text: str) -> list[Mount]:
    """(mount point, type, source) per line of proc(5)'s mountinfo; octal escapes decoded."""
    mounts = []
    for line in text.splitlines():
        fields = line.split(" ")
        if "-" not in fields or len(fields) < 5:
            continue
        separator = fields.index("-")
        if separator + 2 >= len(fields):
            continue
        mounts.append(Mount(_unescape(fields[4]), fields[separator + 1],
                            _unescape(fields[separator + 2])))
    return mounts


def _unescape(field: str) -> str:
    """mountinfo writes space, tab, newline and backslash as octal escapes (\\040)."""
    return _OCTAL_ESCAPE.sub(lambda m: chr(int(m.group(1), 8)), field)


def read_mounts() -> list[Mount]:
    with open(MOUNTINFO, encoding="utf-8", errors="surrogateescape") as f:
        return parse_mountinfo(f.read())


def mount_of(path: str, mounts: list[Mount]) -> Mount | None:
    """The mount holding `path` (a realpath): the longest mount point prefixing it.

    The last one listed wins among equal mount points: a later mount hides an earlier one.
    """
    best: Mount | None = None
    for mount in mounts:
        point = mount.mount_point
        if (path == point or path.startswith(point.rstrip("/") + "/")) and (
            best is None or len(point) >= len(best.mount_point)
        ):
            best = mount
    return best


def is_remote(fs_type: str) -> bool:
    return fs_type in REMOTE_FS_TYPES or fs_type.startswith(FUSE_PREFIX)


def choose_watch_mode(library: LibraryConfig, mounts: list[Mount] | None = None) -> WatchMode:
    """inotify or polling for this library, and why (shown by `config check` and `status`)."""
    if library.watch == "inotify":
        return WatchMode(False, "watch = true")
    if library.watch == "polling":
        return WatchMode(True, "watch = false")
    root = os.path.realpath(library.path)
    try:
        mount = mount_of(root, read_mounts() if mounts is None else mounts)
    except OSError as exc:
        return WatchMode(False, f"auto: filesystem type unknown ({exc.strerror or exc}); "
                                "assuming local")
    if mount is None:
        return WatchMode(False, f"auto: no mount found for {root}; assuming local")
    where = f"{root} is on {mount.fs_type} {mount.source} (mounted at {mount.mount_point})"
    if is_remote(mount.fs_type):
        return WatchMode(True, f"auto: {where}: changes made elsewhere raise no inotify event")
    return WatchMode(False, f"auto: {where}: local")
