"""A file moved out of a library and back under another name keeps its row (issue: moves
across batches).

The watcher sees a delete, then much later a create: two scoped batches. The create's content
matches a row the first batch marked missing, and that row (id, tags, insights) is taken over,
as a full scan would, not left missing beside a new `created` row.
"""

from __future__ import annotations

import shutil

from tests.service.conftest import write


def test_a_file_back_under_another_name_takes_its_missing_row(daemon_env, index, make_daemon,
                                                              tmp_path):
    root = daemon_env.library("photos", {"a/cat.jpg": "meow", "keep.jpg": "k"})
    outside = tmp_path / "outside"
    outside.mkdir()
    daemon = make_daemon().start()
    before = index.rows()["photos/a/cat.jpg"]
    daemon_env.cli("tag", "add", str(root / "a" / "cat.jpg"), "pets")

    shutil.move(root / "a" / "cat.jpg", outside / "cat.jpg")
    daemon.wait_for(lambda: index.hashed("photos/a/cat.jpg", present=False))
    shutil.move(outside / "cat.jpg", root / "kitten.jpg")
    daemon.wait_for(lambda: index.hashed("photos/kitten.jpg"))

    rows = index.rows()
    assert rows["photos/kitten.jpg"]["id"] == before["id"]
    assert "photos/a/cat.jpg" not in rows, "the missing row moved, no stale copy left"
    assert daemon_env.files()["photos/kitten.jpg"]["tags"] == ["pets"]
    assert daemon.stop() == 0


def test_a_directory_back_under_another_name_keeps_every_row(daemon_env, index, make_daemon,
                                                             tmp_path):
    files = {f"album/{i:03d}.jpg": f"photo {i}" for i in range(200)}
    root = daemon_env.library("photos", files)
    daemon = make_daemon().start()
    ids = {key: row["id"] for key, row in index.rows().items()}

    shutil.move(root / "album", tmp_path / "album")
    daemon.wait_for(lambda: all(index.hashed(f"photos/{rel}", present=False) for rel in files))
    shutil.move(tmp_path / "album", root / "renamed")
    daemon.wait_for(lambda: all(index.hashed(f"photos/renamed/{rel[6:]}") for rel in files))

    rows = index.rows()
    assert {k: rows[k]["id"] for k in rows} == {
        f"photos/renamed/{rel[6:]}": ids[f"photos/{rel}"] for rel in files}
    write(root / "later.jpg", "x")  # the daemon still indexes as usual afterwards
    daemon.wait_for(lambda: index.hashed("photos/later.jpg"))
    assert daemon.stop() == 0
