"""Enricher globs mean the same in Python and in SQL (SQLite LIKE, PostgreSQL), exactly."""

from __future__ import annotations

import pytest

from daemon.meta.match import GlobSet, glob_to_like, sql_match
from tests.meta import rows

PATHS = [
    "a.jpg", "A.JPG", "dir/b.Jpg", "dir/sub/c.jpeg", "x.jpg.txt", "jpg", ".jpg",
    "100%_done.png", "100x_done.png", "back\\slash.png", "caf\\xe9.jpg", "Été/É.JPG",
    "été/é.jpg", "a?b.mp4", "ab.mp4", "a/b.mp4", "line\nbreak.jpg", "ÄÖ.png",
]
PATTERNS = [
    ["*.jpg"], ["*.JPEG", "*.jpg"], ["dir/*"], ["?.jpg"], ["a?b.mp4"], ["100%_done.png"],
    ["*\\*"], ["back\\slash.png"], ["*É*"], ["é/*"], ["*"], ["*.png", "*"], [], ["*/*/*"],
    ["*.jpg*"],
]


@pytest.mark.parametrize("patterns", PATTERNS, ids=lambda p: "|".join(p) or "none")
def test_sql_selects_what_python_matches(store, patterns):
    lib = rows.library()
    for path in PATHS:
        rows.file(lib, path.encode(), None)
    where, params = sql_match(patterns, "file.path_text", is_sqlite=store.is_sqlite)
    selected = {text for (text,) in store.query(
        f"SELECT path_text FROM file WHERE {where}", params)}
    globs = GlobSet(patterns)
    assert selected == {path for path in PATHS if globs.matches(path)}


def test_star_crosses_slashes_and_case_folds_ascii_only():
    globs = GlobSet(["*.jpg"])
    assert globs.matches("deep/down/IMG_1.JPG")
    assert not globs.matches("a.jpg.txt")
    assert GlobSet(["?.JPG"]).matches("é.jpg")
    assert not GlobSet(["É.jpg"]).matches("é.jpg")


def test_like_escapes_sql_wildcards():
    assert glob_to_like("100%_A*?\\") == "100\\%\\_a%_\\\\"
