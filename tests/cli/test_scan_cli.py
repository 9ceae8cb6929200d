"""`assetd scan` end to end: the real CLI, real files, SQLite and PostgreSQL."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys

import pytest

from tests.conftest import REPO_ROOT, cli_env, without_dac_override

STAT_KEYS = {"discovered", "created", "updated", "unchanged", "moved", "missing", "restored",
             "hashed", "errors"}


def xxhsum_h2(path) -> str:
    out = subprocess.run(["xxhsum", "-H2", str(path)], capture_output=True, text=True, check=True)
    return out.stdout.split()[0]


def test_cold_scan_json_shape_and_hashes(env):
    root = env.library("photos", {"a.jpg": "aaa", "sub/b.png": "bbbb", "empty": ""})
    out = env.json("scan", "--no-enrich")
    assert set(out) == {"status", "dry_run", "duration_s", "finished_at", "stats", "libraries"}
    assert out["status"] == "ok" and out["dry_run"] is False
    assert out["finished_at"].endswith("Z")
    assert set(out["stats"]) == STAT_KEYS
    assert out["stats"]["discovered"] == out["stats"]["created"] == out["stats"]["hashed"] == 3
    (lib,) = out["libraries"]
    assert set(lib) == {"name", "online", "reason", "stats", "errors"}
    assert lib["name"] == "photos" and lib["online"] is True and lib["reason"] is None
    files = env.files()
    assert set(files) == {"photos/a.jpg", "photos/sub/b.png", "photos/empty"}
    row = files["photos/sub/b.png"]
    assert set(row) == {"library", "path", "size", "mtime_ns", "hash", "missing",
                        "missing_since", "state", "tags"}
    # Hashed, its enrichers not run (--no-enrich): never created ready.
    assert row["size"] == 4 and row["missing"] is False and row["state"] == "enriching"
    assert row["mtime_ns"] == os.stat(root / "sub/b.png").st_mtime_ns
    if shutil.which("xxhsum"):
        assert row["hash"] == "xxh128:" + xxhsum_h2(root / "sub/b.png")


def test_rescan_of_unchanged_tree_reads_no_file(env):
    root = env.library("photos", {f"d{i}/f{j}": f"{i}-{j}" for i in range(3) for j in range(4)})
    env.cli("scan")
    before = env.files()["photos/d0/f0"]["hash"]
    # Same size, same mtime, different bytes: a scan that read the file would see it.
    st = os.stat(root / "d0/f0")
    (root / "d0/f0").write_text("X-0")
    os.utime(root / "d0/f0", ns=(st.st_atime_ns, st.st_mtime_ns))
    out = env.json("scan")
    assert out["stats"]["unchanged"] == 12
    assert out["stats"]["hashed"] == 0 and out["stats"]["created"] == 0
    assert env.files()["photos/d0/f0"]["hash"] == before


def test_edit_in_place_rehashes_and_resets_state(env):
    root = env.library("photos", {"a.txt": "one"})
    env.cli("scan")
    old = env.files()["photos/a.txt"]
    (root / "a.txt").write_text("two, longer")
    out = env.json("scan", "--no-enrich")
    assert out["stats"]["updated"] == 1 and out["stats"]["hashed"] == 1
    new = env.files()["photos/a.txt"]
    assert old["state"] == "ready"
    # The new content's enrichers have not run (--no-enrich): no longer ready.
    assert new["hash"] != old["hash"] and new["size"] == 11 and new["state"] == "enriching"


def test_rename_keeps_the_row(env):
    root = env.library("photos", {"a/x.jpg": "xxx", "keep": "k"})
    env.cli("scan")
    os.rename(root / "a", root / "b")
    out = env.json("scan")
    assert out["stats"]["moved"] == 1
    assert out["stats"]["missing"] == 0 and out["stats"]["created"] == 0
    assert out["stats"]["hashed"] == 0  # an inode move is not re-read
    files = env.files()
    assert "photos/a/x.jpg" not in files and files["photos/b/x.jpg"]["missing"] is False


def test_copy_then_delete_is_a_move_by_hash(env):
    root = env.library("photos", {"a/x.jpg": "content-x"})
    env.cli("scan")
    ids_before = _ids(env)
    shutil.copy2(root / "a/x.jpg", root / "x-copy.jpg")  # new inode
    (root / "a/x.jpg").unlink()
    out = env.json("scan")
    assert out["stats"]["moved"] == 1 and out["stats"]["missing"] == 0
    assert _ids(env)["x-copy.jpg"] == ids_before["a/x.jpg"]


def _ids(env) -> dict[str, int]:
    from daemon.store import Store

    store = Store(env.db_url)
    try:
        return {bytes(p).decode(): i for i, p in store.query("SELECT id, rel_path FROM file")}
    finally:
        store.close()


def test_missing_is_soft_and_restore_keeps_the_row(env):
    root = env.library("photos", {"a.jpg": "aaa", "b.jpg": "bbb"})
    env.cli("scan")
    ids = _ids(env)
    (root / "a.jpg").rename(env.tmp_path / "aside.jpg")
    out = env.json("scan")
    assert out["stats"]["missing"] == 1
    row = env.files()["photos/a.jpg"]
    assert row["missing"] is True and row["missing_since"].endswith("Z")
    assert [f["path"] for f in env.json_lines("files", "--missing")] == ["a.jpg"]
    assert [f["path"] for f in env.json_lines("files")] == ["b.jpg"]
    (env.tmp_path / "aside.jpg").rename(root / "a.jpg")
    out = env.json("scan")
    assert out["stats"]["restored"] == 1
    row = env.files()["photos/a.jpg"]
    assert row["missing"] is False and row["missing_since"] is None
    assert _ids(env)["a.jpg"] == ids["a.jpg"]


def test_offline_library_is_untouched_and_exits_3(env):
    root = env.library("usb", {"a": "1", "b": "2"})
    env.library("local", {"c": "3"})
    env.cli("scan")
    shutil.rmtree(root)
    (env.tmp_path / "local" / "d").write_text("4")
    out = env.json("scan", check=3)
    assert out["status"] == "offline"
    usb = next(lib for lib in out["libraries"] if lib["name"] == "usb")
    assert usb["online"] is False and "does not exist" in usb["reason"]
    local = next(lib for lib in out["libraries"] if lib["name"] == "local")
    assert local["stats"]["created"] == 1  # the others were still scanned
    files = env.files()
    assert files["usb/a"]["missing"] is False and files["usb/b"]["missing"] is False
    status = env.json("status")
    usb_status = next(lib for lib in status["libraries"] if lib["name"] == "usb")
    assert usb_status["online"] is False and usb_status["files"] == 2


def test_marker_decides_online(sqlite_env):
    root = sqlite_env.library("nas", {"a": "1"}, marker=".online")
    out = sqlite_env.json("scan", check=3)
    assert "marker" in out["libraries"][0]["reason"]
    (root / ".online").write_text("")
    assert sqlite_env.json("scan")["stats"]["created"] == 2  # the marker is a file like others


def test_require_mount_offline_when_not_a_mount(sqlite_env):
    sqlite_env.library("disk", {"a": "1"}, require_mount=True)
    out = sqlite_env.json("scan", check=3)
    assert "mount point" in out["libraries"][0]["reason"]


def test_mass_missing_guard(env):
    root = env.library("photos", {f"f{i:03d}": str(i) for i in range(120)})
    env.cli("scan")
    for i in range(70):
        (root / f"f{i:03d}").unlink()
    out = env.json("scan", check=3)
    lib = out["libraries"][0]
    assert out["status"] == "offline" and lib["online"] is False
    assert "mass-missing" in lib["reason"] and "--allow-mass-missing" in lib["reason"]
    assert not any(f["missing"] for f in env.files().values())
    out = env.json("scan", "--allow-mass-missing")
    assert out["stats"]["missing"] == 70
    assert sum(f["missing"] for f in env.files().values()) == 70


def test_small_library_is_not_guarded(sqlite_env):
    root = sqlite_env.library("photos", {f"f{i}": str(i) for i in range(10)})
    sqlite_env.cli("scan")
    for i in range(10):
        (root / f"f{i}").unlink()
    assert sqlite_env.json("scan")["stats"]["missing"] == 10


def test_partial_scans_never_touch_files_outside_scope(env):
    root = env.library("photos", {"in/a": "a", "out/b": "b", "inside": "i"})
    other = env.library("music", {"m": "m"})
    env.cli("scan")
    for path in (root / "in/a", root / "out/b", root / "inside", other / "m"):
        path.unlink()
    (root / "in/new").write_text("n")
    out = env.json("scan", "--path", str(root / "in"))
    assert out["stats"]["missing"] == 1 and out["stats"]["created"] == 1
    assert [lib["name"] for lib in out["libraries"]] == ["photos"]
    files = env.files()
    assert files["photos/in/a"]["missing"] is True
    assert not files["photos/out/b"]["missing"] and not files["photos/inside"]["missing"]
    assert not files["music/m"]["missing"]
    out = env.json("scan", "music")
    assert out["stats"]["missing"] == 1
    assert not env.files()["photos/out/b"]["missing"]


def test_dry_run_writes_nothing(env):
    root = env.library("photos", {"a": "1", "b": "2"})
    dry = env.json("scan", "--dry-run")
    assert dry["dry_run"] is True and dry["stats"]["created"] == 2 and dry["stats"]["hashed"] == 2
    assert env.files() == {}
    assert env.json("status")["libraries"][0]["last_scan"] is None
    assert env.json("status")["libraries"][0]["verify"] is None  # no daemon has verified yet
    env.cli("scan")
    before = env.files()
    (root / "a").unlink()
    (root / "c").write_text("3")
    dry = env.json("scan", "--dry-run")
    assert dry["stats"]["missing"] == 1 and dry["stats"]["created"] == 1
    assert env.files() == before


def test_no_hash_leaves_null_and_next_scan_fills_it(env):
    env.library("photos", {"a": "1"})
    out = env.json("scan", "--no-hash")
    assert out["stats"]["hashed"] == 0 and env.files()["photos/a"]["hash"] is None
    assert env.json("status")["libraries"][0]["unhashed"] == 1
    out = env.json("scan")
    assert out["stats"]["hashed"] == 1 and out["stats"]["unchanged"] == 1
    assert env.files()["photos/a"]["hash"].startswith("xxh128:")


def test_special_files_symlinks_and_own_database_are_not_indexed(sqlite_env):
    root = sqlite_env.library("photos", {"real.jpg": "r"})
    os.mkfifo(root / "pipe")
    os.symlink(root / "real.jpg", root / "link.jpg")
    # The database lives inside the library root: it must never index itself.
    sqlite_env.db_url = f"sqlite:///{root}/index.db"
    sqlite_env.write_config()
    out = sqlite_env.json("scan")
    assert out["stats"]["discovered"] == 1
    assert set(sqlite_env.files()) == {"photos/real.jpg"}


def test_follow_symlinks_with_a_loop(sqlite_env):
    root = sqlite_env.library("photos", {"a/x": "x"}, follow_symlinks=True)
    os.symlink(root, root / "a/loop")
    os.symlink(root / "a/x", root / "x-link")
    sqlite_env.cli("scan", timeout=30)
    assert set(sqlite_env.files()) == {"photos/a/x", "photos/x-link"}


def test_non_utf8_names_are_indexed_with_escapes(env):
    root = env.library("photos")
    with open(os.path.join(os.fsencode(root), b"caf\xe9.jpg"), "wb") as f:
        f.write(b"bytes")
    env.cli("scan")
    (row,) = env.json_lines("files")
    assert row["path"] == "caf\\xe9.jpg"
    os.unlink(os.path.join(os.fsencode(root), b"caf\xe9.jpg"))
    assert env.json("scan")["stats"]["missing"] == 1


def test_excludes(sqlite_env):
    sqlite_env.library("photos", {"a.jpg": "a", "b.tmp": "b", ".cache/c": "c"},
                       exclude=["*.tmp", ".cache/**"])
    sqlite_env.cli("scan")
    assert set(sqlite_env.files()) == {"photos/a.jpg"}


def test_unreadable_file_is_listed_and_exit_1(sqlite_env):
    root = sqlite_env.library("photos", {"ok.jpg": "ok", "secret.jpg": "s"})
    (root / "secret.jpg").chmod(0)
    proc = subprocess.run(
        [*without_dac_override(), sys.executable, "-m", "daemon",
         "--config", str(sqlite_env.config_path), "scan", "--json"],
        capture_output=True, text=True, env=cli_env(), cwd=REPO_ROOT,
    )
    assert proc.returncode == 1, proc.stderr
    out = json.loads(proc.stdout)
    assert out["status"] == "partial" and out["stats"]["errors"] == 1
    (error,) = out["libraries"][0]["errors"]
    assert error["path"] == "secret.jpg" and error["error"].startswith("PermissionError")
    files = sqlite_env.files()
    assert files["photos/secret.jpg"]["hash"] is None  # indexed, hash unknown
    assert files["photos/ok.jpg"]["hash"] is not None


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["scan", "nope"], "unknown library 'nope'"),
        (["scan", "--path", "/definitely/elsewhere"], "not inside any configured library"),
        (["files", "--hash", "zzz"], "not a content hash"),
    ],
)
def test_usage_errors_exit_2_with_one_line(sqlite_env, args, message):
    sqlite_env.library("photos", {"a": "1"})
    sqlite_env.cli("scan")
    proc = sqlite_env.cli(*args, check=2)
    assert message in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1 and "Traceback" not in proc.stderr


def test_files_filters(sqlite_env):
    sqlite_env.library("photos", {"a": "same", "b": "same", "c": "other"})
    sqlite_env.library("music", {"m": "same"})
    sqlite_env.cli("scan")
    files = sqlite_env.files()
    same = files["photos/a"]["hash"]
    by_hash = sqlite_env.json_lines("files", "--hash", same)
    assert sorted(f"{f['library']}/{f['path']}" for f in by_hash) == [
        "music/m", "photos/a", "photos/b",
    ]
    assert len(sqlite_env.json_lines("files", "--hash", same.removeprefix("xxh128:"))) == 3
    assert [f["path"] for f in sqlite_env.json_lines("files", "--library", "music")] == ["m"]


def test_human_output(sqlite_env):
    root = sqlite_env.library("photos", {"a.jpg": "a"})
    out = sqlite_env.cli("scan").stdout
    assert "photos: 1 file: 1 new" in out and out.strip().endswith("s")
    assert "photos/a.jpg" in sqlite_env.cli("files").stdout
    status = sqlite_env.cli("status").stdout
    assert f"photos: {root}" in status and "online" in status


def _tags(env) -> dict[str, list[str]]:
    return {path: f["tags"] for path, f in env.files().items() if not f["missing"]}


def test_rotation_moves_rows_and_tags_stay_with_their_bytes(env):
    root = env.library("photos", {"a": "bytes of a", "b": "bytes of b"})
    env.cli("scan")
    ids = _ids(env)
    env.cli("tag", "add", str(root / "a"), "atag")
    env.cli("tag", "add", str(root / "b"), "btag")
    os.rename(root / "b", root / "c")
    os.rename(root / "a", root / "b")
    out = env.json("scan")
    assert out["stats"]["moved"] == 2 and out["stats"]["updated"] == 0
    assert _tags(env) == {"photos/b": ["atag"], "photos/c": ["btag"]}
    assert _ids(env) == {"b": ids["a"], "c": ids["b"]}


def test_a_new_file_at_the_path_a_file_moved_from(env):
    """`mv a c; create a`: a's row (id, tags) goes to c and a new row takes path a. The new
    row's insert once came before the move and failed on the unique path, at every scan."""
    root = env.library("photos", {"a.jpg": "bytes of a", "b.jpg": "bytes of b"})
    env.cli("scan")
    ids = _ids(env)
    env.cli("tag", "add", str(root / "a.jpg"), "atag")
    os.rename(root / "a.jpg", root / "c.jpg")
    (root / "a.jpg").write_text("a new picture")
    out = env.json("scan")
    assert (out["stats"]["moved"], out["stats"]["created"]) == (1, 1)
    assert _ids(env)["c.jpg"] == ids["a.jpg"] and _ids(env)["a.jpg"] not in ids.values()
    assert _tags(env) == {"photos/a.jpg": [], "photos/b.jpg": [], "photos/c.jpg": ["atag"]}
    # The feed, replayed in order, leaves the path before a new file takes it.
    last = [(c["kind"], c["path"], c.get("old_path")) for c in env.json_lines("changes")][-2:]
    assert last == [("moved", "c.jpg", "a.jpg"), ("created", "a.jpg", None)]
    assert env.json("scan")["stats"]["unchanged"] == 3


def test_overwrite_by_rename_does_not_carry_the_old_tags(env):
    root = env.library("photos", {"a": "bytes of a", "b": "bytes of b", "e": "edit me"})
    env.cli("scan")
    for name in ("a", "b", "e"):
        env.cli("tag", "add", str(root / name), f"{name}tag")
    os.rename(root / "a", root / "b")  # b's old bytes are gone
    (root / "e").write_text("edited in place")
    env.cli("scan")
    assert _tags(env) == {"photos/b": ["atag"], "photos/e": ["etag"]}
