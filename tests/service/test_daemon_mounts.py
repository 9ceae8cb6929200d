"""Watch modes chosen per filesystem, and mounts noticed at once: real mounts, the real daemon.

Mounting needs root (and bindfs for the FUSE case); where either is missing the test is skipped
with the reason (.ci/run installs bindfs and runs as root).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.service.conftest import write

needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="mounting needs root")


@contextlib.contextmanager
def mounted(command: list[str], mount_point: Path) -> Iterator[Path]:
    subprocess.run(command, check=True, capture_output=True)
    try:
        yield mount_point
    finally:
        unmount(mount_point)


def unmount(mount_point: Path) -> None:
    """Retried: a scan may hold the root open for a moment."""
    if not os.path.ismount(mount_point):
        return
    for _ in range(50):
        if subprocess.run(["umount", str(mount_point)], capture_output=True).returncode == 0:
            return
        time.sleep(0.1)
    subprocess.run(["umount", "-l", str(mount_point)], check=True)


def library_status(env, name: str) -> dict:
    status = env.json("status")
    return next(lib for lib in status["libraries"] if lib["name"] == name)


@needs_root
@pytest.mark.skipif(shutil.which("bindfs") is None, reason="bindfs is not installed")
@pytest.mark.skipif(not os.path.exists("/dev/fuse"), reason="no /dev/fuse (FUSE unavailable)")
def test_a_fuse_root_is_polled_and_sees_files_written_behind_it(daemon_env, index, make_daemon):
    source, mount_point = daemon_env.tmp_path / "source", daemon_env.tmp_path / "fuse"
    write(source / "before.jpg", "before")
    mount_point.mkdir()
    with mounted(["bindfs", str(source), str(mount_point)], mount_point):
        daemon_env.library("nas", path=str(mount_point))
        check = daemon_env.cli("config", "check").stdout
        assert "library nas: " in check and "watch polling (auto: " in check
        assert f"is on fuse {source} (mounted at {mount_point})" in check
        daemon = make_daemon().start()
        assert index.hashed("nas/before.jpg")
        nas = library_status(daemon_env, "nas")
        assert nas["watch"] == "polling" and " is on fuse " in nas["watch_reason"]
        assert nas["inotify_watches"] == 0

        # Written into the source: the FUSE mount's kernel side never hears of it.
        write(source / "sub" / "behind.jpg", "written behind the mount")
        daemon.wait_for(lambda: index.hashed("nas/sub/behind.jpg"))
        assert daemon.stop() == 0


@needs_root
def test_a_tmpfs_root_is_watched_with_inotify(daemon_env, index, make_daemon):
    mount_point = daemon_env.tmp_path / "ram"
    mount_point.mkdir()
    with mounted(["mount", "-t", "tmpfs", "tmpfs", str(mount_point)], mount_point):
        write(mount_point / "a" / "b" / "c.jpg", "c")
        daemon_env.library("ram", path=str(mount_point))
        daemon = make_daemon().start()
        ram = library_status(daemon_env, "ram")
        assert ram["watch"] == "inotify" and "tmpfs" in ram["watch_reason"]
        daemon.wait_for(lambda: library_status(daemon_env, "ram")["inotify_watches"] == 3)
        assert daemon_env.json("status")["inotify_watches_limit"] > 0
        write(mount_point / "new.jpg", "seen by inotify")
        daemon.wait_for(lambda: index.hashed("ram/new.jpg"), timeout=5)
        assert daemon.stop() == 0


@needs_root
def test_mount_and_unmount_are_noticed_without_a_tick(daemon_env, index, make_daemon):
    daemon_env.daemon["tick_interval"] = 60  # nothing below may wait for a tick
    daemon_env.write_config()
    mount_point = daemon_env.library("usb", require_mount=True)
    daemon = make_daemon().start()
    daemon.wait_log("library.offline", library="usb")

    try:
        subprocess.run(["mount", "-t", "tmpfs", "tmpfs", str(mount_point)], check=True)
        mounted_at = time.monotonic()
        write(mount_point / "photo.jpg", "on the new disk")
        daemon.wait_log("library.online", library="usb", timeout=2.0)
        daemon.wait_for(lambda: index.hashed("usb/photo.jpg"), timeout=2.0)
        mounted_s = time.monotonic() - mounted_at

        unmount(mount_point)
        unmounted_at = time.monotonic()
        daemon.wait_log("library.offline", library="usb", count=2, timeout=2.0)
        unmounted_s = time.monotonic() - unmounted_at
    finally:
        unmount(mount_point)
    assert not index.rows()["usb/photo.jpg"]["missing"]
    assert library_status(daemon_env, "usb")["online"] is False
    assert daemon.last_tick() is None, "no tick ran: the mount table did it"
    assert daemon.stop() == 0
    print(f"mount noticed and scanned in {mounted_s:.2f}s, unmount in {unmounted_s:.2f}s")
