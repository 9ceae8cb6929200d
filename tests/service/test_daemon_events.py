"""Changes made while `assetd run` watches are reflected in the index, with their hashes."""

from __future__ import annotations

import os
import shutil
import signal

from daemon.scan.hash import hash_file
from tests.service.conftest import write


def test_create_modify_delete_restore(daemon_env, index, make_daemon):
    root = daemon_env.library("photos", {"old.txt": "old"})
    daemon = make_daemon().start()
    assert index.hashed("photos/old.txt"), "the startup scan indexed the existing file"

    path = write(root / "sub" / "new.jpg", "first version")
    created = daemon.wait_for(lambda: index.hashed("photos/sub/new.jpg"))
    assert created["hash"] == hash_file(path).content_hash

    write(path, "second, longer version")
    modified = daemon.wait_for(
        lambda: (row := index.hashed("photos/sub/new.jpg")) and row["hash"] != created["hash"]
        and row)
    assert modified["id"] == created["id"]
    assert modified["hash"] == hash_file(path).content_hash

    path.unlink()
    missing = daemon.wait_for(lambda: index.hashed("photos/sub/new.jpg", present=False))
    assert missing["id"] == created["id"], "a deleted file keeps its row, marked missing"

    write(path, "second, longer version")
    restored = daemon.wait_for(lambda: index.hashed("photos/sub/new.jpg"))
    assert restored["id"] == created["id"]

    write(root / "flash.tmp.jpg", "created and deleted within settle").unlink()
    write(root / "marker.jpg", "written after it")
    daemon.wait_for(lambda: index.hashed("photos/marker.jpg"))
    assert "photos/flash.tmp.jpg" not in index.rows(), "nothing net"
    # The ticks run the enrichers and the lifecycle pass on what the events indexed.
    daemon.wait_for(lambda: index.row("photos/marker.jpg")["state"] == "ready")
    assert daemon.stop() == 0


def test_move_keeps_row_and_tags(daemon_env, index, make_daemon):
    root = daemon_env.library("photos", {"a/cat.jpg": "meow", "a/dog.jpg": "woof"})
    daemon = make_daemon().start()
    before = index.rows()
    daemon_env.cli("tag", "add", str(root / "a" / "cat.jpg"), "pets")

    os.rename(root / "a" / "cat.jpg", root / "a" / "kitten.jpg")
    daemon.wait_for(lambda: index.hashed("photos/a/kitten.jpg"))
    # A directory move is one batch: the whole tree keeps its rows.
    os.rename(root / "a", root / "b")
    daemon.wait_for(lambda: index.hashed("photos/b/kitten.jpg")
                    and index.hashed("photos/b/dog.jpg"))

    after = index.rows()
    assert after["photos/b/kitten.jpg"]["id"] == before["photos/a/cat.jpg"]["id"]
    assert after["photos/b/dog.jpg"]["id"] == before["photos/a/dog.jpg"]["id"]
    assert set(after) == {"photos/b/kitten.jpg", "photos/b/dog.jpg"}, "moved, not copied"
    files = daemon_env.files()
    assert files["photos/b/kitten.jpg"]["tags"] == ["pets"]
    assert not files["photos/b/kitten.jpg"]["missing"]
    moves = daemon.wait_for(lambda: len(m := [e["moved"] for e in daemon.events("scan.finished")
                                              if e["moved"]]) == 2 and m)
    assert moves == [1, 2]
    assert daemon.stop() == 0


def test_directory_delete_is_one_batch(daemon_env, index, make_daemon):
    files = {f"album/{i:03d}.jpg": f"photo {i}" for i in range(50)}
    root = daemon_env.library("photos", files)
    daemon = make_daemon().start()
    scans_before = len(daemon.events("scan.finished"))

    shutil.rmtree(root / "album")
    daemon.wait_for(lambda: all(row["missing"] for row in index.rows().values()))
    marked = daemon.wait_for(lambda: [e["missing"] for e in daemon.events("scan.finished")
                                      [scans_before:] if e["missing"]])
    assert marked == [50]
    assert daemon.stop() == 0


def test_burst_of_2000_files_is_indexed_in_batches(daemon_env, index, make_daemon):
    root = daemon_env.library("photos")
    daemon = make_daemon().start()

    for i in range(2000):
        write(root / f"d{i % 20:02d}" / f"f{i:04d}.dat", f"content {i}")
    daemon.wait_for(
        lambda: sum(1 for r in index.rows().values() if r["hash"] and not r["missing"]) == 2000,
        timeout=60, message="2,000 hashed rows")
    def created_batches() -> list[dict]:
        return [e for e in daemon.events("scan.finished") if e["created"]]

    daemon.wait_for(lambda: sum(e["created"] for e in created_batches()) == 2000)
    batches = created_batches()
    assert len(batches) < 200, f"{len(batches)} batches for 2,000 files: not batched"
    assert daemon.stop() == 0


def test_excluded_paths_are_not_indexed(daemon_env, index, make_daemon):
    root = daemon_env.library("photos", exclude=["*.tmp", ".cache/**"])
    daemon = make_daemon().start()

    write(root / "x.tmp", "partial")
    write(root / ".cache" / "thumb.jpg", "thumb")
    write(root / "keep.jpg", "keep")
    daemon.wait_for(lambda: index.hashed("photos/keep.jpg"))
    assert set(index.rows()) == {"photos/keep.jpg"}
    assert daemon.stop() == 0


def test_watch_false_library_is_polled(daemon_env, index, make_daemon):
    root = daemon_env.library("nas", watch=False)
    daemon = make_daemon().start()

    write(root / "remote.mkv", "made by another machine")
    daemon.wait_for(lambda: index.hashed("nas/remote.mkv"))
    assert daemon.stop() == 0


def test_reload_applies_a_new_tick_interval_to_polling(daemon_env, index, make_daemon):
    daemon_env.daemon["tick_interval"] = 60  # polls every minute
    root = daemon_env.library("nas", watch=False)
    daemon = make_daemon().start()
    daemon_env.daemon["tick_interval"] = 0.3
    daemon_env.write_config()
    daemon.signal(signal.SIGHUP)
    daemon.wait_log("config.reloaded")
    daemon.wait_log("scan.finished", library="nas", count=2)  # the reload's rescan

    write(root / "after-reload.mkv", "seen by the next poll, not in a minute")
    daemon.wait_for(lambda: index.hashed("nas/after-reload.mkv"), timeout=10)
    assert daemon.stop() == 0


def test_database_inside_a_library_does_not_feed_back(daemon_env, index, make_daemon):
    """The daemon's own writes (index.db, -wal, -locks/) must not wake it up again."""
    daemon_env.library("home", {"a.jpg": "a"}, path=daemon_env.tmp_path)
    daemon = make_daemon().start()

    write(daemon_env.tmp_path / "b.jpg", "b")
    daemon.wait_for(lambda: index.hashed("home/b.jpg"))
    daemon.wait_log("scan.finished", created=1, discovered=1)  # logged just after the commit
    scans = len(daemon.events("scan.finished"))
    daemon.wait_ticks(3)
    assert len(daemon.events("scan.finished")) == scans, "idle: no scans of our own files"
    assert not any("index.db" in key for key in index.rows())
    assert daemon.stop() == 0


def test_full_rescan_interval_scans_every_library_again(daemon_env, make_daemon):
    daemon_env.daemon["full_rescan_interval"] = "1s"
    daemon_env.write_config()
    daemon_env.library("photos", {"a.jpg": "a", "b.jpg": "b"})
    daemon = make_daemon().start()
    # The startup scan, then at least two periodic ones: each sees the whole library.
    daemon.wait_log("scan.finished", count=3, discovered=2, unchanged=2)
    assert daemon.stop() == 0
