"""The daemon's first start on a new index with several libraries: the file table's secondary
indexes are left out through all its startup scans and built once, after the last one and
before READY=1 (each library's own scan built them after the first: every later library's
rows then went into three indexes, the content hash's on random pages)."""

from __future__ import annotations

from daemon.store.deferred_indexes import DEFERRED
from tests.service.conftest import DAEMON_SETTINGS, query_db

LIBRARIES = ("photos", "music", "video")
ORDER = ("indexes.deferred", "indexes.built", "scan.finished", "daemon.ready")


def present_indexes(db_url: str) -> set[str]:
    if db_url.startswith("sqlite:///"):
        query = "SELECT name FROM sqlite_master WHERE type = 'index'"
    else:
        query = "SELECT indexname FROM pg_indexes WHERE schemaname = current_schema()"
    return {name for (name,) in query_db(db_url, query)}


def test_a_first_start_with_several_libraries_builds_the_indexes_once_after_its_scans(
        env, make_daemon):
    env.daemon.update(DAEMON_SETTINGS, log_level="debug")
    for name in LIBRARIES:
        env.library(name, {f"d{d}/{name}{i}.jpg": f"{name} {d} {i}"
                           for d in range(3) for i in range(40)})
    daemon = make_daemon(env=env).start()  # READY=1
    seen = [(e["event"], e.get("library")) for e in daemon.logs if e.get("event") in ORDER]
    assert seen == [("indexes.deferred", None),
                    *(("scan.finished", name) for name in LIBRARIES),
                    ("indexes.built", None),
                    ("daemon.ready", None)]
    assert set(DEFERRED) <= present_indexes(env.db_url)
    assert sum(row[0] for row in query_db(env.db_url, "SELECT count(*) FROM file")) == 360

    # A restart, and a new file: the index has rows, nothing is left out again.
    assert daemon.stop() == 0
    (env.tmp_path / "music" / "new.jpg").write_text("new")
    daemon = make_daemon(env=env).start()
    assert daemon.events("indexes.deferred") == daemon.events("indexes.built") == []
    assert daemon.stop() == 0
