"""Libraries that go away and come back, and changes made while the daemon was not running."""

from __future__ import annotations

import os

from tests.service.conftest import write


def test_offline_library_is_logged_once_and_nothing_is_marked_missing(
        daemon_env, index, make_daemon):
    root = daemon_env.library("usb", {"a.jpg": "a", "d/b.jpg": "b"})
    other = daemon_env.library("photos")
    daemon = make_daemon().start()
    unplugged = root.with_name("usb-unplugged")

    os.rename(root, unplugged)  # the disk goes away: no per-file events, just no root
    offline = daemon.wait_log("library.offline", library="usb")
    assert "does not exist" in offline["reason"]
    daemon.wait_ticks(3)
    assert len(daemon.events("library.offline")) == 1, "logged when it changes, not every tick"
    assert not any(row["missing"] for row in index.rows().values())
    status = {lib["name"]: lib for lib in daemon_env.json("status")["libraries"]}
    assert status["usb"]["online"] is False
    write(other / "meanwhile.jpg", "other libraries keep working")
    daemon.wait_for(lambda: index.hashed("photos/meanwhile.jpg"))

    write(unplugged / "added-elsewhere.jpg", "c")
    os.unlink(unplugged / "a.jpg")
    os.rename(unplugged, root)  # plugged back in
    daemon.wait_log("library.online", library="usb")
    daemon.wait_for(lambda: index.hashed("usb/added-elsewhere.jpg"))
    daemon.wait_for(lambda: index.hashed("usb/a.jpg", present=False))
    assert not index.rows()["usb/d/b.jpg"]["missing"]
    # Watched again: a new root directory needs a new watch.
    write(root / "after.jpg", "d")
    daemon.wait_for(lambda: index.hashed("usb/after.jpg"))
    assert daemon.stop() == 0


def test_startup_scan_catches_up_with_changes_made_while_stopped(daemon_env, index, make_daemon):
    root = daemon_env.library("photos", {"keep.jpg": "k", "edit.jpg": "v1", "gone.jpg": "g",
                                         "old/name.jpg": "n"})
    first = make_daemon().start()
    before = index.rows()
    assert first.stop() == 0

    write(root / "new.jpg", "new")
    write(root / "edit.jpg", "version 2")
    os.unlink(root / "gone.jpg")
    os.rename(root / "old", root / "renamed")
    second = make_daemon().start()  # READY=1 comes after the startup scan

    after = index.rows()
    assert after["photos/new.jpg"]["hash"]
    assert after["photos/edit.jpg"]["id"] == before["photos/edit.jpg"]["id"]
    assert after["photos/edit.jpg"]["hash"] != before["photos/edit.jpg"]["hash"]
    assert after["photos/gone.jpg"]["missing"]
    assert after["photos/renamed/name.jpg"]["id"] == before["photos/old/name.jpg"]["id"]
    assert "photos/old/name.jpg" not in after
    assert second.stop() == 0
