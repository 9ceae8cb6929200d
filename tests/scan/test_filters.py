import pytest

from daemon.scan.filters import ExcludeMatcher


@pytest.mark.parametrize(
    ("patterns", "path", "is_dir", "excluded"),
    [
        (["*.tmp"], b"a.tmp", False, True),
        (["*.tmp"], b"deep/dir/a.tmp", False, True),
        (["*.tmp"], b"a.tmpx", False, False),
        ([".cache/**"], b".cache", True, True),
        ([".cache/**"], b".cache/x/y", False, True),
        ([".cache/**"], b"sub/.cache/x", False, False),
        (["raw/*.cr2"], b"raw/a.cr2", False, True),
        (["raw/*.cr2"], b"raw/d/a.cr2", False, False),
        (["raw/**/*.cr2"], b"raw/a.cr2", False, True),
        (["raw/**/*.cr2"], b"raw/d/e/a.cr2", False, True),
        (["?.jpg"], b"a.jpg", False, True),
        (["?.jpg"], b"ab.jpg", False, False),
        (["node_modules"], b"web/node_modules", True, True),
        (["*.tmp"], b"\xff.tmp", False, True),
        ([], b"anything", False, False),
    ],
)
def test_exclude_patterns(patterns, path, is_dir, excluded):
    assert ExcludeMatcher(patterns).excluded(path, is_dir=is_dir) is excluded


def test_excluded_anywhere_checks_parent_directories():
    matcher = ExcludeMatcher([".cache/**", "node_modules"])
    assert matcher.excluded_anywhere(b".cache/a/b")
    assert matcher.excluded_anywhere(b"x/node_modules/y/z.js")
    assert not matcher.excluded_anywhere(b"x/y/z.js")
