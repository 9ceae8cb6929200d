"""The streaming scan (real files, real DB): moves are found whichever side the walk meets
first, across directories and parts, and the guard still counts what vanished."""

from __future__ import annotations

import json
import os

import pytest

from daemon.config import load_config
from daemon.scan import scanner
from daemon.scan.scanner import ScanOptions, normalize_scopes, scan_library
from daemon.store import labels, queries
from daemon.store.hashes import from_db


def scan(env, store, **kwargs):
    config = load_config(str(env.config_path))
    return scan_library(store, config, config.libraries[0], **kwargs)


def rows(store) -> dict[str, tuple[int, bool, str | None]]:
    library = queries.get_library("photos")
    return {r.rel_path.decode(): (r.id, r.is_missing, r.content_hash)
            for r in queries.file_snapshot(store, library.id, [b""]).values()}


@pytest.fixture(params=[20_000, 2], ids=["one-part", "parts-of-2"])
def part_files(request, monkeypatch):
    monkeypatch.setattr(scanner, "PART_FILES", request.param)
    return request.param


def test_rename_into_a_directory_walked_before_the_source(env, store, part_files):
    files = {f"z/src/f{i}": f"data {i}" for i in range(5)}
    root = env.library("photos", files)
    scan(env, store)
    before = rows(store)
    os.rename(root / "z" / "src", root / "a")  # a/ sorts (and is walked) before z/
    result = scan(env, store)
    assert result.stats["moved"] == 5 and result.stats["created"] == 0
    assert result.stats["missing"] == 0 and result.stats["hashed"] == 0  # no byte read
    after = rows(store)
    assert {after[f"a/f{i}"][0] for i in range(5)} == {before[f"z/src/f{i}"][0] for i in range(5)}
    assert not any(path.startswith("z/") for path in after)


def test_rename_into_a_directory_walked_after_the_source(env, store, part_files):
    root = env.library("photos", {f"a/f{i}": f"data {i}" for i in range(5)})
    scan(env, store)
    ids = {path: row_id for path, (row_id, _, _) in rows(store).items()}
    os.rename(root / "a", root / "z")
    result = scan(env, store)
    assert result.stats["moved"] == 5 and result.stats["hashed"] == 0
    assert {rows(store)[f"z/f{i}"][0] for i in range(5)} == set(ids.values())


def test_copy_then_delete_moves_by_hash_both_ways(env, store, part_files):
    root = env.library("photos", {"m/early": "early bytes", "m/late": "late bytes"})
    scan(env, store)
    ids = {path: row_id for path, (row_id, _, _) in rows(store).items()}
    for name, dest in (("early", "z/early"), ("late", "a/late")):  # new inodes
        data = (root / "m" / name).read_bytes()
        (root / "m" / name).unlink()
        (root / dest).parent.mkdir(exist_ok=True)
        (root / dest).write_bytes(data)
    result = scan(env, store)
    assert result.stats["moved"] == 2 and result.stats["missing"] == 0
    after = rows(store)
    assert after["z/early"][0] == ids["m/early"] and after["a/late"][0] == ids["m/late"]


def test_file_reappearing_with_the_content_of_a_long_missing_row_takes_it_over(env, store):
    root = env.library("photos", {"m/photo.jpg": "the picture"})
    scan(env, store)
    (row_id, _, _), = rows(store).values()
    data = (root / "m" / "photo.jpg").read_bytes()
    (root / "m" / "photo.jpg").unlink()
    assert scan(env, store).stats["missing"] == 1
    (root / "a").mkdir()
    (root / "a" / "photo.jpg").write_bytes(data)
    result = scan(env, store)
    assert result.stats["moved"] == 1 and result.stats["created"] == 0
    assert rows(store)["a/photo.jpg"][:2] == (row_id, False)


def test_a_copy_of_a_file_that_stays_is_created(env, store, part_files):
    root = env.library("photos", {"z/orig": "same bytes"})
    scan(env, store)
    (root / "a").mkdir()
    (root / "a" / "copy").write_bytes(b"same bytes")
    os.link(root / "z" / "orig", root / "a" / "hardlink")  # same identity, source stays
    result = scan(env, store)
    assert result.stats["created"] == 2 and result.stats["moved"] == 0
    assert result.stats["unchanged"] == 1
    assert len({row_id for row_id, _, _ in rows(store).values()}) == 3


def test_rotation_across_directories(env, store, part_files):
    root = env.library("photos", {"x/a": "content a", "y/b": "content b"})
    scan(env, store)
    ids = {path: row_id for path, (row_id, _, _) in rows(store).items()}
    os.rename(root / "y" / "b", root / "c")  # mv y/b c; mv x/a y/b
    os.rename(root / "x" / "a", root / "y" / "b")
    result = scan(env, store)
    assert result.stats["moved"] == 2 and result.stats["updated"] == 0
    after = rows(store)
    assert after["y/b"][0] == ids["x/a"] and after["c"][0] == ids["y/b"]


def test_partial_scan_never_takes_a_row_outside_its_scope(env, store):
    root = env.library("photos", {"b/x": "moved bytes"})
    scan(env, store)
    (root / "a").mkdir()
    os.rename(root / "b" / "x", root / "a" / "x")
    result = scan(env, store, scopes=[b"a"])
    assert result.stats["created"] == 1 and result.stats["moved"] == 0
    assert rows(store)["b/x"][1] is False  # outside the scope: untouched


def test_mass_missing_guard_while_streaming_in_parts(env, store, monkeypatch):
    monkeypatch.setattr(scanner, "PART_FILES", 7)
    root = env.library("photos", {f"d{i % 10}/f{i:03d}": f"bytes {i}" for i in range(150)})
    scan(env, store)
    for i in range(100):
        (root / f"d{i % 10}" / f"f{i:03d}").unlink()
    for i in range(30):  # new files, written (and applied) in parts before the guard trips
        (root / f"new{i:02d}").write_text(f"new {i}")
    result = scan(env, store)
    assert result.online is False and "100 of 150" in result.reason
    assert not any(missing for _, missing, _ in rows(store).values())
    result = scan(env, store, options=ScanOptions(allow_mass_missing=True))
    assert result.online and result.stats["missing"] == 100


def test_dry_run_streams_the_same_plan_and_writes_nothing(env, store, part_files):
    root = env.library("photos", {f"z/f{i}": f"data {i}" for i in range(4)})
    scan(env, store)
    before = rows(store)
    os.rename(root / "z", root / "a")
    (root / "a" / "new").write_text("new")
    result = scan(env, store, options=ScanOptions(dry_run=True))
    assert result.stats["moved"] == 4 and result.stats["created"] == 1
    assert rows(store) == before


def test_scopes_are_merged_once():
    assert normalize_scopes([b"a/b", b"a", b"c", b"a.txt", b"a"]) == [b"a.txt", b"a", b"c"]
    assert normalize_scopes([b"x", b""]) == [b""]


def test_many_files_are_hashed_in_worker_processes(env, store, monkeypatch):
    from daemon.scan import hashpool
    from daemon.scan.hash import hash_file

    monkeypatch.setattr(hashpool, "BATCH_FILES", 7)
    monkeypatch.setattr(hashpool, "POOL_MIN_FILES", 50)
    monkeypatch.setattr(scanner, "PART_FILES", 100)
    root = env.library("photos", {f"d{i % 4}/f{i:03d}": f"bytes {i}" * i for i in range(300)})
    started = []
    real_submit = hashpool.Hasher._submit
    monkeypatch.setattr(hashpool.Hasher, "_submit",
                        lambda self, batch: started.append(len(batch)) or real_submit(self, batch))
    result = scan(env, store)
    assert result.stats["hashed"] == 300 and result.stats["created"] == 300
    assert sum(started) == 300  # every file went through the pool
    for path, (_, _, content_hash) in rows(store).items():
        assert content_hash == hash_file(root / path).content_hash


@pytest.mark.parametrize("pool_min_files", [10_000, 1], ids=["in-process", "pool"])
def test_new_files_are_read_once_for_hash_and_mime(env, store, monkeypatch, pool_min_files):
    from daemon.meta import enrich, mime
    from daemon.scan import hashpool

    monkeypatch.setattr(hashpool, "POOL_MIN_FILES", pool_min_files)
    root = env.library("photos", {"a/pic.png": b"\x89PNG\r\n\x1a\n" + b"\0" * 5000,
                                  "a/notes.txt": "hello", "b/copy.txt": "hello"})
    result = scan(env, store, options=ScanOptions(sniff=True))
    assert result.stats["hashed"] == 3
    expected = {rel: mime.detect(bytes(root / rel), rel) for rel in ("a/pic.png", "a/notes.txt")}
    rows_ = store.query(f"SELECT rel_path, {labels.insight_value('insight')},"
                        f" (SELECT text FROM {labels.TABLE} WHERE id = source_label)"
                        " FROM insight"
                        " WHERE kind_label = (SELECT id FROM label WHERE text = 'mime')")
    # One per content, found by its hash: a hashed insight keeps no path.
    stored = sorted((r[0], json.dumps(json.loads(r[1]), sort_keys=True), r[2]) for r in rows_)
    assert stored == sorted(
        (None, json.dumps(value, sort_keys=True), "mime") for value in expected.values())

    def read_again(path, path_text):
        raise AssertionError(f"{path_text} read a second time")

    monkeypatch.setattr(mime, "detect", read_again)
    config = load_config(str(env.config_path))
    enrich.enrich_libraries(store, config, ["photos"])  # mime has nothing left to read
    (root / "c.txt").write_text("hello")  # known content: no second insight
    scan(env, store, options=ScanOptions(sniff=True))
    assert len(store.query("SELECT 1 FROM insight"
                           " WHERE kind_label = (SELECT id FROM label WHERE text = 'mime')")) == 2


def test_no_sniffing_without_enrichment(env, store):
    env.library("photos", {"a.txt": "hello"})
    scan(env, store)
    assert store.query("SELECT 1 FROM insight") == []


def test_sniffed_insight_respects_existing_ones(env, store):
    from daemon.meta.insights import record_insight
    from daemon.scan.hash import hash_file

    root = env.library("photos", {})
    (root / "old.txt").write_text("old config")
    (root / "user.txt").write_text("user says")
    old, user = (hash_file(root / n).content_hash for n in ("old.txt", "user.txt"))
    record_insight(store, content_hash=old, library_id=None, rel_path=None, kind="mime",
                   value={"mime": "x/old"}, source="mime", enricher_checksum="stale")
    record_insight(store, content_hash=user, library_id=None, rel_path=None, kind="mime",
                   value={"mime": "x/user"}, source="user")
    scan(env, store, options=ScanOptions(sniff=True))
    current = {from_db(digest): value for digest, value in store.query(
        f"SELECT content_hash, {labels.insight_value('insight')} FROM insight"
        " WHERE kind_label = (SELECT id FROM label WHERE text = 'mime') AND is_current")}
    assert json.loads(current[old])["mime"] == "text/plain"  # the stale one was demoted
    assert json.loads(current[user])["mime"] == "x/user"  # a user's is never overwritten
    assert len(store.query("SELECT 1 FROM insight")) == 3


def test_a_stop_during_pooled_hashing_keeps_the_applied_parts(env, store, monkeypatch):
    from daemon.scan import hashpool
    from tests.scan.test_scanner import StopAfterBytes

    monkeypatch.setattr(hashpool, "POOL_MIN_FILES", 1)
    monkeypatch.setattr(hashpool, "BATCH_FILES", 2)
    monkeypatch.setattr(scanner, "PART_FILES", 4)
    env.library("photos", {f"f{i:02d}": "x" * 100 for i in range(12)})
    with pytest.raises(KeyboardInterrupt):
        scan(env, store, progress=StopAfterBytes(550))  # while collecting the second part
    assert len(rows(store)) == 4  # the first part was applied, the pool was shut down
    result = scan(env, store)
    assert result.stats["unchanged"] == 4 and result.stats["created"] == 8
