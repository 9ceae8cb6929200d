"""A library the mass-missing guard kept from its scan: a disk that failed to mount leaves an
empty mount point, online by its probe. The daemon reads none of its files until a scan
passes (every tick tried each indexed file: a million missing files a tick, within the hash
budget), and scans it again when the mount table changes, without waiting for a tick."""

from __future__ import annotations

import os
import subprocess

from tests.service.test_daemon_mounts import mounted, needs_root, unmount

FILES = 120  # the guard looks after libraries of 100 files or more


def tmpfs_with_files(mount_point) -> list[str]:
    """A tmpfs mounted at `mount_point` holding the library's files."""
    return ["sh", "-c", f'mount -t tmpfs assetd-test "$1" && for i in $(seq -w 0 {FILES - 1}); '
            f'do echo "picture $i" > "$1/f$i.jpg"; done', "sh", str(mount_point)]


@needs_root
def test_an_empty_mount_point_is_not_read_and_is_scanned_once_mounted(
        daemon_env, index, make_daemon):
    root, staging = daemon_env.tmp_path / "nas", daemon_env.tmp_path / "staging"
    root.mkdir()
    staging.mkdir()
    with mounted(tmpfs_with_files(root), root):
        daemon_env.library("nas", path=str(root))
        daemon_env.cli("scan", "--no-hash")  # hashes left to the daemon's backfill
    assert os.listdir(root) == []  # the disk failed to mount: its mount point is empty

    daemon_env.daemon["log_level"] = "debug"
    daemon_env.write_config()
    daemon = make_daemon().start()
    tripped = daemon.wait_log("library.offline", library="nas")
    assert "mass-missing guard" in tripped["reason"]
    daemon.wait_ticks(3)
    reads = [e for e in daemon.logs if e.get("event", "").startswith(("backfill.", "enrich."))]
    assert reads == [], "the files of a guarded library were read"
    assert not any(row["missing"] for row in index.rows().values())

    # The disk is mounted, whole at once (mounted elsewhere, then moved over the mount point):
    # scanned at once, not at the next full rescan.
    with mounted(tmpfs_with_files(staging), staging):
        subprocess.run(["mount", "--move", str(staging), str(root)], check=True)
    try:
        finished = daemon.wait_log("scan.finished", library="nas")
        assert finished["missing"] == 0 and finished["hashed"] == FILES
        assert all(row["hash"] and not row["missing"] for row in index.rows().values())
    finally:
        unmount(root)
    assert daemon.stop() == 0


def test_a_guarded_library_is_scanned_again_at_the_full_rescan_interval(
        daemon_env, make_daemon):
    root = daemon_env.library("nas", {f"f{i:03d}.jpg": f"picture {i}" for i in range(FILES)})
    daemon_env.cli("scan", "--no-enrich")
    away = daemon_env.tmp_path / "away"
    os.rename(root, away)
    root.mkdir()  # an empty mount point
    daemon_env.daemon.update(log_level="debug", full_rescan_interval="1s")
    daemon_env.write_config()
    daemon = make_daemon().start()
    assert "mass-missing guard" in daemon.wait_log("library.offline", library="nas")["reason"]
    daemon.wait_log("scan.started", library="nas", reason="full_rescan_interval")
    assert daemon.stop() == 0
