"""The watch mode chosen from a mount table (mountinfo lines as the kernel writes them)."""

from __future__ import annotations

import pytest

from daemon.config import LibraryConfig
from daemon.mounts import choose_watch_mode, mount_of, parse_mountinfo

MOUNTINFO = """\
22 1 8:1 / / rw,relatime shared:1 - ext4 /dev/sda1 rw
30 22 0:40 / /srv/nas rw,relatime shared:7 - nfs4 nas1:/export rw,vers=4.2
31 30 0:41 / /srv/nas/local rw shared:8 - xfs /dev/sdb1 rw
32 22 0:42 / /mnt/my\\040disk rw - fuseblk /dev/sdc1 rw
33 22 0:43 / /home/u/remote rw - fuse.sshfs u@host:/data rw
34 22 0:44 / /mnt/smb rw - cifs //srv/share rw
35 22 0:45 / /mnt/shadowed rw - nfs old:/x rw
36 22 0:46 / /mnt/shadowed rw - ext4 /dev/sdd1 rw
"""


def test_parse_decodes_octal_escapes_and_reads_type_and_source():
    mounts = parse_mountinfo(MOUNTINFO)
    assert mounts[3].mount_point == "/mnt/my disk" and mounts[3].fs_type == "fuseblk"
    assert mounts[1].source == "nas1:/export"


@pytest.mark.parametrize(("path", "mode", "fs_type"), [
    ("/srv/photos", "inotify", "ext4"),
    ("/srv/nas/photos", "polling", "nfs4"),
    ("/srv/nas/local/photos", "inotify", "xfs"),  # the longest mount point wins
    ("/srv/nasty", "inotify", "ext4"),  # a prefix of the name is not a parent directory
    ("/mnt/my disk/photos", "inotify", "fuseblk"),  # a local disk through FUSE
    ("/home/u/remote", "polling", "fuse.sshfs"),
    ("/mnt/smb/x", "polling", "cifs"),
    ("/mnt/shadowed", "inotify", "ext4"),  # mounted over: the later mount is the one seen
])
def test_auto_polls_network_and_fuse_roots(path, mode, fs_type):
    mounts = parse_mountinfo(MOUNTINFO)
    assert mount_of(path, mounts).fs_type == fs_type
    chosen = choose_watch_mode(LibraryConfig("lib", path), mounts)
    assert chosen.name == mode
    assert chosen.reason.startswith(f"auto: {path} is on {fs_type} ")


def test_true_and_false_override_auto():
    mounts = parse_mountinfo(MOUNTINFO)
    nfs = "/srv/nas/photos"
    assert choose_watch_mode(LibraryConfig("l", nfs, watch="inotify"), mounts).name == "inotify"
    assert choose_watch_mode(LibraryConfig("l", "/x", watch="polling"), mounts).reason == (
        "watch = false")
