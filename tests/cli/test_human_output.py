"""Human output: hostile names stay one unambiguous line per file; counts read as English."""

from __future__ import annotations

import os

import pytest

from daemon.cli.output import display_path
from daemon.units import plural

HOSTILE = {
    b"new\nline.jpg": "new\\nline.jpg",
    b"tab\there.jpg": "tab\\there.jpg",
    b"cr\rhere.jpg": "cr\\rhere.jpg",
    b"esc\x1b[31mred.jpg": "esc\\x1b[31mred.jpg",
    b"\xff.jpg": "\\xff.jpg",                 # the byte 0xff (not UTF-8)
    b"\\xff.jpg": "\\\\xff.jpg",              # the four characters \ x f f
    b"back\\slash.jpg": "back\\\\slash.jpg",
    b"nel\xc2\x85.jpg": "nel\\u0085.jpg",      # U+0085 is not the byte 0x85
    b"\x85.jpg": "\\x85.jpg",
    b"caf\xc3\xa9 ok.jpg": "café ok.jpg",       # printable text is left alone
}


@pytest.mark.parametrize("raw, shown", HOSTILE.items())
def test_display_path(raw, shown):
    assert display_path(raw) == shown


def test_display_path_is_one_line_and_tells_every_name_apart():
    shown = [display_path(raw) for raw in HOSTILE]
    assert len(set(shown)) == len(shown)
    assert not any(ch in s for s in shown for ch in "\n\r\t\x1b\x85")


def test_plural():
    assert [plural(n, "file") for n in (0, 1, 2, 1234)] == [
        "0 files", "1 file", "2 files", "1,234 files"]
    assert plural(1, "mismatch") == "1 mismatch" and plural(3, "mismatch") == "3 mismatches"


def make_hostile_library(env):
    root = env.library("photos")
    for i, raw in enumerate(HOSTILE):
        # every file twice (same bytes), so `dupes` lists them all too
        for copy in (b"", b".copy"):
            with open(os.path.join(os.fsencode(root), raw + copy), "wb") as f:
                f.write(b"content %d" % i)
    env.cli("scan", "--no-enrich")
    return root


def test_files_and_dupes_print_hostile_names_one_unambiguous_line_each(sqlite_env):
    make_hostile_library(sqlite_env)
    expected = sorted(
        f"photos/{shown}{copy}" for shown in HOSTILE.values() for copy in ("", ".copy"))

    lines = sqlite_env.cli("files").stdout.splitlines()
    assert len(lines) == len(expected)
    assert sorted(line.split("\t")[0] for line in lines) == expected

    lines = sqlite_env.cli("dupes").stdout.splitlines()
    listed = sorted(line.strip() for line in lines if line.startswith("  "))
    assert listed == expected
    assert len(lines) == len(expected) + len(HOSTILE)  # a header line per group

    # JSON keeps the contract's form: undecodable bytes as \xNN, the rest as JSON escapes.
    paths = {f["path"] for f in sqlite_env.json_lines("files")}
    assert "\xff.jpg".encode("latin-1").decode("utf-8", "backslashreplace") in paths
    assert "new\nline.jpg" in paths and "\\xff.jpg" in paths


def test_tag_and_insight_show_name_hostile_files_on_one_line(sqlite_env):
    root = make_hostile_library(sqlite_env)
    target = os.path.join(os.fsencode(root), b"new\nline.jpg")
    out = sqlite_env.cli("tag", "add", os.fsdecode(target), "t").stdout
    assert out == "photos/new\\nline.jpg: added t; 2 indexed files carry this content\n"
    out = sqlite_env.cli("insight", "show", os.fsdecode(target)).stdout
    assert out.splitlines()[0].startswith("photos/new\\nline.jpg\t")


def test_files_path_lists_one_file_or_a_directory(sqlite_env):
    root = sqlite_env.library("photos", {"a.jpg": "A", "sub/b.jpg": "B", "sub/c.jpg": "C",
                                         "subway.jpg": "D"})
    sqlite_env.cli("scan", "--no-enrich")
    one = sqlite_env.json_lines("files", str(root / "a.jpg"))
    assert [f["path"] for f in one] == ["a.jpg"]
    under = sqlite_env.json_lines("files", str(root / "sub"), str(root / "a.jpg"))
    assert [f["path"] for f in under] == ["a.jpg", "sub/b.jpg", "sub/c.jpg"]
    assert len(sqlite_env.json_lines("files", str(root))) == 4
    proc = sqlite_env.cli("files", str(root / "nope.jpg"), str(root / "a.jpg"), check=1)
    assert proc.stdout.startswith("photos/a.jpg\t")
    assert proc.stderr.count("\n") == 1 and "nope.jpg: no indexed file" in proc.stderr
    sqlite_env.cli("files", str(sqlite_env.tmp_path), check=2)  # not inside a library


def test_counts_are_singular_for_one(sqlite_env):
    sqlite_env.library("photos", {"a.jpg": "A"})
    out = sqlite_env.cli("scan", "--no-enrich").stdout
    assert "photos: 1 file: 1 new" in out and "0 errors" in out
    out = sqlite_env.cli("verify").stdout
    assert out.splitlines()[-1] == "ok: 1 file checked, 0 mismatches"


def test_verify_of_an_offline_library_does_not_say_ok(sqlite_env):
    sqlite_env.library("photos", {"a.jpg": "A"})
    sqlite_env.library("usb", path=sqlite_env.tmp_path / "usb", marker=".assetd-library")
    sqlite_env.cli("scan", "--no-enrich", check=3)
    out = sqlite_env.cli("verify", check=3).stdout
    last = out.splitlines()[-1]
    assert not last.startswith("ok") and "offline: usb" in last


def test_verify_names_a_rotten_file_unambiguously(sqlite_env):
    """The byte 0xff and the four characters `\\xff` are two names, and print as two."""
    root = sqlite_env.library("photos")
    names = [b"\xff.dat", b"\\xff.dat", b"new\nline.dat"]
    for name in names:
        with open(os.fsencode(root) + b"/" + name, "wb") as f:
            f.write(b"original")
    sqlite_env.cli("scan")
    for name in names:  # bit rot: other bytes behind the same size and mtime
        path = os.fsencode(root) + b"/" + name
        before = os.stat(path)
        with open(path, "wb") as f:
            f.write(b"ORIGINAL")
        os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns))
    out = sqlite_env.cli("verify", check=1).stdout.splitlines()
    mismatches = sorted(line.split(":")[0] for line in out if line.startswith("MISMATCH "))
    assert mismatches == ["MISMATCH photos/\\\\xff.dat", "MISMATCH photos/\\xff.dat",
                          "MISMATCH photos/new\\nline.dat"]


def test_scan_errors_name_the_file_unambiguously(sqlite_env):
    from tests.conftest import without_dac_override

    root = sqlite_env.library("photos")
    for name in (b"\xff.dat", b"\\xff.dat"):
        path = os.fsencode(root) + b"/" + name
        with open(path, "wb") as f:
            f.write(b"secret")
        os.chmod(path, 0)
    out = sqlite_env.cli("scan", check=1, wrapper=without_dac_override()).stdout.splitlines()
    errors = sorted(line.split(": ")[1] for line in out if line.startswith("  error: "))
    assert errors == ["\\\\xff.dat", "\\xff.dat"]  # the text \xff, the byte 0xff
