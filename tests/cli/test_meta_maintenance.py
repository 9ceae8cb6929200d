"""`dupes`, `verify` and `prune` end to end."""

from __future__ import annotations

import os
import time

from daemon.store import Store, changes


def test_dupes_groups_present_files_sharing_a_hash(env):
    photos = env.library("photos", {"a": "dup-big!", "sub/b": "dup-big!", "c": "dup", "d": "x",
                                    "gone": "dup"})
    backup = env.library("backup", {"c-copy": "dup", "a-copy": "dup-big!"})
    env.cli("scan", "--no-enrich")
    (photos / "gone").unlink()
    env.cli("scan", "--no-enrich")
    groups = env.json_lines("dupes")
    hashes = {f["path"]: f["hash"] for f in env.files().values()}
    assert groups == [
        {"hash": hashes["a"], "size": 8, "files": [
            {"library": "backup", "path": "a-copy"}, {"library": "photos", "path": "a"},
            {"library": "photos", "path": "sub/b"}]},
        {"hash": hashes["c"], "size": 3, "files": [
            {"library": "backup", "path": "c-copy"}, {"library": "photos", "path": "c"}]},
    ]
    assert [g["files"] for g in env.json_lines("dupes", "--library", "photos")] == [
        [{"library": "photos", "path": "a"}, {"library": "photos", "path": "sub/b"}]]
    assert env.json_lines("dupes", "--library", "backup") == []
    assert str(backup) not in env.cli("dupes").stdout  # human output names library/path


def test_verify_catches_same_size_same_mtime_corruption(env):
    root = env.library("photos", {"ok.jpg": "fine", "rot.jpg": "good bytes", "edit.jpg": "v1"})
    env.cli("scan", "--no-enrich")
    stored = env.files()["photos/rot.jpg"]["hash"]
    assert env.json("verify") == {"status": "ok", "checked": 3, "mismatches": [], "errors": []}

    st = os.stat(root / "rot.jpg")
    (root / "rot.jpg").write_bytes(b"good bytez")
    os.utime(root / "rot.jpg", ns=(st.st_atime_ns, st.st_mtime_ns))
    (root / "edit.jpg").write_text("v2")  # a real edit: new mtime, the scan's business
    os.utime(root / "edit.jpg", (time.time() + 5, time.time() + 5))

    out = env.json("verify", "photos", check=1)
    assert out["status"] == "mismatch" and out["checked"] == 2
    (mismatch,) = out["mismatches"]
    assert mismatch["library"] == "photos" and mismatch["path"] == "rot.jpg"
    assert mismatch["expected"] == stored and mismatch["actual"].startswith("xxh128:")
    assert mismatch["actual"] != stored
    assert env.files()["photos/rot.jpg"]["hash"] == stored  # never rewritten
    (corrupt,) = corrupt_changes(env)
    assert (corrupt.library, corrupt.path, corrupt.content_hash) == ("photos", "rot.jpg", stored)
    assert corrupt.detail == {"actual": mismatch["actual"]}
    assert "MISMATCH photos/rot.jpg" in env.cli("verify", check=1).stdout
    assert len(corrupt_changes(env)) == 2  # each run that finds it says so


def corrupt_changes(env) -> list[changes.ChangeRow]:
    store = Store(env.db_url)
    try:
        return [row for row in changes.read(store).rows if row.kind == changes.CORRUPT]
    finally:
        store.close()


def test_verify_reports_an_offline_library(env):
    env.library("photos", {"a": "a"})
    env.library("usb", {"b": "b"}, marker=".mounted")
    env.cli("scan", "--no-enrich", check=3)
    out = env.json("verify", check=3)
    assert out["status"] == "ok" and out["checked"] == 1
    assert out["errors"][0]["library"] == "usb" and "offline" in out["errors"][0]["error"]


def age_missing_files(env, names: list[str], days: float) -> None:
    """Pretend these files went missing `days` ago (a test cannot wait 30 days)."""
    store = Store(env.db_url)
    try:
        with store.write_tx():
            for name in names:
                store.execute("UPDATE file SET missing_since = ? WHERE rel_path = ?",
                              [time.time() - days * 86400, name.encode()])
    finally:
        store.close()


def test_prune_deletes_only_long_missing_rows_and_orphaned_metadata(env):
    root = env.library("photos", {"old": "old", "recent": "recent", "kept": "kept",
                                  "shared": "same", "shared-copy": "same"})
    env.cli("scan", "--no-enrich")
    for name in ("old", "recent", "kept", "shared"):
        env.cli("tag", "add", str(root / name), "t")
    env.cli("insight", "set", str(root / "old"), "note", '"bye"')
    env.cli("insight", "set", str(root / "kept"), "note", '"stay"')
    for name in ("old", "recent", "shared"):
        (root / name).unlink()
    env.cli("scan", "--no-enrich")
    age_missing_files(env, ["old", "shared"], days=31)
    before = env.files()

    dry = env.json("prune", "--dry-run")
    # old and shared go; old's tag and insight go with it; shared's tag stays with its copy.
    assert dry == {"dry_run": True, "files": 2, "tags": 1, "insights": 1}
    assert env.files() == before
    assert env.json("prune", "--older-than", "32d")["files"] == 0

    assert env.json("prune") == {**dry, "dry_run": False}
    after = env.files()
    assert set(after) == {"photos/recent", "photos/kept", "photos/shared-copy"}
    assert all(row["tags"] == ["t"] for row in after.values())
    assert env.json("prune", "--older-than", "0")["files"] == 1
    env.cli("prune", "--older-than", "soon", check=2)
