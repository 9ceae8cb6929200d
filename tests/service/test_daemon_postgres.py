"""The daemon on PostgreSQL: create, move and delete reach the index."""

from __future__ import annotations

import os

import pytest

from tests.service.conftest import DAEMON_SETTINGS, Daemon, Index, write


@pytest.mark.postgres
@pytest.mark.parametrize("db_url", ["postgres"], indirect=True)
def test_create_move_delete_on_postgres(env, make_daemon):
    env.daemon.update(DAEMON_SETTINGS)
    root = env.library("photos", {"a.jpg": "a"})
    index = Index(env.db_url)
    daemon: Daemon = make_daemon(env=env).start()

    write(root / "new.jpg", "new")
    created = daemon.wait_for(lambda: index.hashed("photos/new.jpg"))
    os.rename(root / "new.jpg", root / "renamed.jpg")
    moved = daemon.wait_for(lambda: index.hashed("photos/renamed.jpg"))
    assert moved["id"] == created["id"]
    assert "photos/new.jpg" not in index.rows()
    os.unlink(root / "a.jpg")
    daemon.wait_for(lambda: index.hashed("photos/a.jpg", present=False))
    assert [d["pid"] for d in env.json("status")["daemons"]] == [daemon.pid]
    assert daemon.stop() == 0
    assert env.json("status")["daemons"] == []
