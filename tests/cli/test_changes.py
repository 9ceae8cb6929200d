"""`assetd changes`: every write path records its changes; ids, --since, --library, retention.

These run the real CLI against both backends; the concurrency of ids on PostgreSQL is in
tests/store/test_changes.py, and the daemon's side (watcher batches, /changes, --follow
across hosts) in tests/service/test_daemon_changes.py.
"""

from __future__ import annotations

import os
import time

from daemon.store import Store
from daemon.store import changes as feed
from tests.conftest import Env


def kinds(env: Env, *args: str) -> list[tuple]:
    return [(c["kind"], c["library"], c["path"]) for c in env.json_lines("changes", *args)]


def test_every_write_path_records_its_changes(env: Env):
    root = env.library("photos", {"a.jpg": "aaa", "b.jpg": "bbb", "c.jpg": "ccc"})
    env.cli("scan", "--no-enrich")
    first = env.json_lines("changes")
    assert [c["id"] for c in first] == [1, 2, 3]  # ids start at 1
    assert [(c["kind"], c["path"]) for c in first] == [
        ("created", "a.jpg"), ("created", "b.jpg"), ("created", "c.jpg")]
    files = env.files()
    assert first[0]["hash"] == files["photos/a.jpg"]["hash"]
    assert first[0]["host"] == env.json("status")["libraries"][0]["host"]
    assert first[0]["at"].endswith("Z")

    os.rename(root / "a.jpg", root / "moved.jpg")
    (root / "b.jpg").write_text("edited")
    os.unlink(root / "c.jpg")
    env.cli("scan", "--no-enrich")
    second = env.json_lines("changes", "--since", "3")
    by_kind = {c["kind"]: c for c in second}
    assert sorted(by_kind) == ["missing", "moved", "updated"]
    assert by_kind["moved"]["path"] == "moved.jpg" and by_kind["moved"]["old_path"] == "a.jpg"
    assert by_kind["updated"]["path"] == "b.jpg"
    assert by_kind["updated"]["hash"] == env.files()["photos/b.jpg"]["hash"]
    assert by_kind["missing"]["path"] == "c.jpg"

    (root / "c.jpg").write_text("ccc")
    env.cli("scan", "--no-enrich")
    assert kinds(env, "--since", str(second[-1]["id"])) == [("restored", "photos", "c.jpg")]

    last = env.json_lines("changes")[-1]["id"]
    env.cli("tag", "add", str(root / "moved.jpg"), "keep", "best")
    env.cli("tag", "rm", str(root / "moved.jpg"), "best")
    env.cli("insight", "set", str(root / "moved.jpg"), "caption", '{"text": "hi"}')
    tail = env.json_lines("changes", "--since", str(last))
    assert [(c["kind"], c.get("tag"), c.get("insight_kind")) for c in tail] == [
        ("tagged", "keep", None), ("tagged", "best", None), ("untagged", "best", None),
        ("insight", None, "caption")]
    assert {c["path"] for c in tail} == {"moved.jpg"}


def test_a_scan_without_changes_records_none_and_a_touch_is_no_update(env: Env):
    root = env.library("photos", {"a.jpg": "aaa"})
    env.cli("scan", "--no-enrich")
    count = len(env.json_lines("changes"))
    env.cli("scan", "--no-enrich")
    later = time.time() + 5
    os.utime(root / "a.jpg", (later, later))  # new mtime, same bytes
    env.cli("scan", "--no-enrich")
    assert len(env.json_lines("changes")) == count


def test_hash_learned_later_is_an_update(env: Env):
    env.library("photos", {"a.jpg": "aaa"})
    env.cli("scan", "--no-hash", "--no-enrich")
    [created] = env.json_lines("changes")
    assert created["kind"] == "created" and created["hash"] is None
    env.cli("scan", "--no-enrich")
    [updated] = env.json_lines("changes", "--since", str(created["id"]))
    assert updated["kind"] == "updated" and updated["hash"].startswith("xxh128:")


def test_enricher_insights_and_prune_are_changes(env: Env):
    root = env.library("photos", {"a.txt": "hello"})
    env.cli("scan")
    assert ("insight", "photos", "a.txt") in kinds(env)
    [insight] = [c for c in env.json_lines("changes") if c["kind"] == "insight"]
    assert insight["insight_kind"] == "mime"
    os.unlink(root / "a.txt")
    env.cli("scan")
    env.cli("prune", "--older-than", "0s", "--dry-run")
    assert kinds(env)[-1] == ("missing", "photos", "a.txt")  # a dry run records nothing
    env.cli("prune", "--older-than", "0s")
    assert kinds(env)[-1] == ("pruned", "photos", "a.txt")


def test_library_offline_and_online(env: Env):
    root = env.library("photos", {"a.jpg": "a"}, marker=".online")
    (root / ".online").write_text("")
    env.cli("scan")
    os.unlink(root / ".online")
    env.cli("scan", check=3)
    env.cli("scan", check=3)  # still offline: no second change
    (root / ".online").write_text("")
    env.cli("scan")
    availability = [c for c in env.json_lines("changes")
                    if c["kind"].startswith("library_")]
    assert [(c["kind"], c["library"], c["path"], c["hash"]) for c in availability] == [
        ("library_offline", "photos", None, None), ("library_online", "photos", None, None)]


def test_library_filter_and_since(env: Env):
    env.library("photos", {"a.jpg": "a"})
    env.library("music", {"x.flac": "x"})
    env.cli("scan", "--no-enrich")
    assert kinds(env, "--library", "music") == [("created", "music", "x.flac")]
    everything = env.json_lines("changes")
    assert env.json_lines("changes", "--since", str(everything[-1]["id"])) == []
    line = env.cli("changes", "--library", "nope", check=2).stderr.strip()
    assert line == "assetd: no library named 'nope' in the config or the index"
    assert "a change id is 0 or more" in env.cli("changes", "--since", "-1", check=2).stderr
    assert "not a change id: 'x'" in env.cli("changes", "--since", "x", check=2).stderr


def test_human_lines(sqlite_env: Env):
    root = sqlite_env.library("photos", {"a.jpg": "a"})
    sqlite_env.cli("scan", "--no-enrich")
    os.rename(root / "a.jpg", root / "b.jpg")
    sqlite_env.cli("scan", "--no-enrich")
    lines = sqlite_env.cli("changes").stdout.splitlines()
    assert lines[0].split("\t")[0] == "1"
    assert lines[0].split("\t")[3:] == ["created", "photos/a.jpg"]
    assert lines[1].split("\t")[3:] == ["moved", "photos/b.jpg", "from=a.jpg"]


def test_retention_drops_old_changes_and_says_reset(env: Env):
    env.library("photos", {f"f{i}": str(i) for i in range(5)})
    env.cli("scan", "--no-enrich")
    store = Store(env.db_url)
    try:
        assert feed.drop_older_than(store, time.time() - 3600) == 0  # nothing that old
        assert feed.drop_older_than(store, time.time() + 1, max_ids=3) == 3  # bounded
        assert feed.drop_older_than(store, time.time() + 1) == 2
    finally:
        store.close()
    assert env.json_lines("changes") == [{"kind": "reset", "oldest_id": 6}]
    # the newest rows were dropped too: their ids are never handed out again
    (env.tmp_path / "photos" / "new").write_text("new")
    env.cli("scan", "--no-enrich")
    reset, new = env.json_lines("changes")
    assert reset == {"kind": "reset", "oldest_id": 6}
    assert (new["id"], new["kind"], new["path"]) == (6, "created", "new")
    assert env.json_lines("changes", "--since", "5") == [new]  # nothing it missed: no reset
