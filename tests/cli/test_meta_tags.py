"""Tags end to end: they follow the bytes through renames, copies, edits and unhashed spells."""

from __future__ import annotations

import os
import shutil


def tags_of(env, key: str) -> list[str]:
    return env.files()[key]["tags"]


def test_tags_survive_rename_copy_across_libraries_and_edit(env):
    photos = env.library("photos", {"a.jpg": "AAA", "other.jpg": "B"})
    backup = env.library("backup")
    env.cli("scan", "--no-enrich")
    env.cli("tag", "add", str(photos / "a.jpg"), "holiday", "best")

    os.rename(photos / "a.jpg", photos / "b.jpg")
    shutil.copy(photos / "b.jpg", backup / "b-copy.jpg")
    env.cli("scan", "--no-enrich")
    files = env.files()
    assert files["photos/b.jpg"]["tags"] == ["best", "holiday"]
    assert files["backup/b-copy.jpg"]["tags"] == ["best", "holiday"]
    assert files["photos/other.jpg"]["tags"] == []

    (photos / "b.jpg").write_text("AAA, edited")
    env.cli("scan", "--no-enrich")
    files = env.files()
    assert files["photos/b.jpg"]["hash"] != files["backup/b-copy.jpg"]["hash"]
    assert files["photos/b.jpg"]["tags"] == ["best", "holiday"]
    assert files["backup/b-copy.jpg"]["tags"] == ["best", "holiday"]
    tagged = env.json_lines("files", "--tag", "holiday")
    assert sorted(f"{f['library']}/{f['path']}" for f in tagged) == [
        "backup/b-copy.jpg", "photos/b.jpg"]
    assert env.json("tag", "ls") == [{"tag": "best", "files": 2}, {"tag": "holiday", "files": 2}]


def test_tag_set_while_unhashed_is_filled_by_reconcile(env):
    root = env.library("photos", {"a.jpg": "AAA"})
    env.cli("scan", "--no-hash")
    assert env.files()["photos/a.jpg"]["hash"] is None
    env.cli("tag", "add", str(root / "a.jpg"), "later")
    assert tags_of(env, "photos/a.jpg") == ["later"]

    env.cli("scan", "--no-enrich")
    shutil.copy(root / "a.jpg", root / "copy.jpg")
    env.cli("scan", "--no-enrich")
    files = env.files()
    assert files["photos/a.jpg"]["tags"] == ["later"]  # by path, until the fill
    assert files["photos/copy.jpg"]["tags"] == []
    assert env.json("reconcile")["passes"]["null_hash_fill"] == 1
    assert tags_of(env, "photos/copy.jpg") == ["later"]
    assert env.json("reconcile")["changes"] == 0


def test_path_tags_and_insights_follow_an_unhashed_file_that_moves(env):
    root = env.library("photos", {"a.jpg": "AAA"})
    env.cli("scan", "--no-hash")
    env.cli("tag", "add", str(root / "a.jpg"), "t")
    env.cli("insight", "set", str(root / "a.jpg"), "note", '"by path"')
    os.makedirs(root / "sub")
    os.rename(root / "a.jpg", root / "sub" / "b.jpg")
    assert env.json("scan", "--no-hash")["stats"]["moved"] == 1
    assert tags_of(env, "photos/sub/b.jpg") == ["t"]
    env.cli("scan", "--no-enrich")
    assert env.json("reconcile")["passes"]["null_hash_fill"] == 2
    shutil.copy(root / "sub" / "b.jpg", root / "copy.jpg")
    env.cli("scan", "--no-enrich")
    assert tags_of(env, "photos/copy.jpg") == ["t"]
    shown = env.json("insight", "show", str(root / "copy.jpg"))["insights"]
    assert [(i["kind"], i["value"]) for i in shown] == [("note", "by path")]


def test_edit_scanned_without_hashing_keeps_tags_until_filled(env):
    root = env.library("photos", {"a.jpg": "AAA"})
    env.cli("scan", "--no-enrich")
    env.cli("tag", "add", str(root / "a.jpg"), "keep")
    (root / "a.jpg").write_text("new content")
    env.cli("scan", "--no-hash")
    assert env.files()["photos/a.jpg"]["hash"] is None
    assert tags_of(env, "photos/a.jpg") == ["keep"]
    env.cli("scan", "--no-enrich")
    assert env.json("reconcile")["passes"]["null_hash_fill"] == 1
    shutil.copy(root / "a.jpg", root / "copy.jpg")
    env.cli("scan", "--no-enrich")
    assert tags_of(env, "photos/copy.jpg") == ["keep"]


def test_tag_ls_rm_and_errors(env):
    root = env.library("photos", {"a.jpg": "AAA", "dup.jpg": "AAA", "b.jpg": "B"})
    env.cli("scan", "--no-enrich")
    out = env.cli("tag", "add", str(root / "a.jpg"), "x", "y", "x").stdout
    assert "added x, y" in out
    assert "already tagged" in env.cli("tag", "add", str(root / "dup.jpg"), "x").stdout
    assert env.cli("tag", "ls", str(root / "dup.jpg")).stdout == "x\ny\n"
    assert env.json("tag", "ls", str(root / "a.jpg")) == {
        "library": "photos", "path": "a.jpg", "tags": ["x", "y"]}

    # A tag belongs to the content: removing it from one copy removes it from both.
    proc = env.cli("tag", "rm", str(root / "dup.jpg"), "x", "nope")
    assert "not tagged: nope" in proc.stderr
    assert proc.stdout == "photos/dup.jpg: removed x; 2 indexed files carry this content\n"
    assert env.json("tag", "ls", str(root / "a.jpg"))["tags"] == ["y"]
    assert env.json("tag", "ls") == [{"tag": "y", "files": 2}]

    (root / "unscanned.jpg").write_text("new")
    errors = {
        "outside": env.cli("tag", "add", str(env.tmp_path / "elsewhere.jpg"), "t", check=2),
        "unindexed": env.cli("tag", "add", str(root / "unscanned.jpg"), "t", check=2),
        "directory": env.cli("tag", "rm", str(root), "t", check=2),
        "ls": env.cli("tag", "ls", str(root / "unscanned.jpg"), check=2),
    }
    assert "not inside any configured library" in errors["outside"].stderr
    assert f"run `assetd scan --path {root / 'unscanned.jpg'}` first" in errors["unindexed"].stderr
    # Where a scan cannot help, it is not suggested.
    assert "a directory" in errors["directory"].stderr
    assert "assetd scan" not in errors["directory"].stderr
    for proc in errors.values():
        assert proc.stderr.startswith("assetd: ") and proc.stderr.count("\n") == 1


def test_edits_in_one_scan_carry_the_tags_only_of_tagged_contents(env):
    """A scan looks up which old contents have tags and carries only those (apply.carry_tags):
    among many edits in one part, the tagged file's tags follow it, with or without its new
    hash, and an untagged file gets none."""
    names = [f"f{i:03d}.jpg" for i in range(60)]
    root = env.library("photos", {name: f"old {name}" for name in names})
    env.cli("scan", "--no-enrich")
    env.cli("tag", "add", str(root / "f007.jpg"), "keep")
    env.cli("tag", "add", str(root / "f042.jpg"), "also")
    for name in names[:30]:
        (root / name).write_text(f"new {name}")
    env.cli("scan", "--no-enrich")
    for name in names[30:]:
        (root / name).write_text(f"new {name}")
    env.cli("scan", "--no-hash")  # no new hash yet: carried by path
    files = env.files()
    assert {key: f["tags"] for key, f in files.items() if f["tags"]} == {
        "photos/f007.jpg": ["keep"], "photos/f042.jpg": ["also"]}
    assert files["photos/f042.jpg"]["hash"] is None
    env.cli("scan", "--no-enrich")
    assert {key: f["tags"] for key, f in env.files().items() if f["tags"]} == {
        "photos/f007.jpg": ["keep"], "photos/f042.jpg": ["also"]}
