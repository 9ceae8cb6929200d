"""Exclude globs, relative to the library root.

A pattern without `/` (`*.tmp`, `.DS_Store`) matches a file or directory name at any depth,
as in .gitignore. A pattern with `/` is anchored at the root (`.cache/**`, `raw/*.cr2`):
`*` and `?` stay inside one path component, `**` spans any number of them. A directory that
matches is not entered, so `.cache/**` prunes `.cache` itself.
"""

from __future__ import annotations

import re
from collections.abc import Iterable


def glob_to_regex(pattern: str) -> str:
    out, i = [], 0
    while i < len(pattern):
        if pattern.startswith("**", i):
            i += 2
            if pattern.startswith("/", i):  # "a/**/b" also matches "a/b"
                out.append("(?:.*/)?")
                i += 1
            else:
                out.append(".*")
            continue
        char = pattern[i]
        out.append({"*": "[^/]*", "?": "[^/]"}.get(char, re.escape(char)))
        i += 1
    return "".join(out)


class ExcludeMatcher:
    def __init__(self, patterns: Iterable[str]):
        name_patterns, path_patterns = [], []
        for pattern in patterns:
            if "/" in pattern.rstrip("/"):
                path_patterns.append(glob_to_regex(pattern.lstrip("/").rstrip("/")))
            else:
                name_patterns.append(glob_to_regex(pattern.rstrip("/")))
        self._name_re = re.compile("^(?:" + "|".join(name_patterns) + ")$", re.S) \
            if name_patterns else None
        self._path_re = re.compile("^(?:" + "|".join(path_patterns) + ")$", re.S) \
            if path_patterns else None
        self.active = bool(name_patterns or path_patterns)

    def excluded(self, rel_path: bytes, *, is_dir: bool) -> bool:
        if not self.active:
            return False
        text = rel_path.decode("utf-8", "surrogateescape")
        if self._name_re is not None and self._name_re.match(text.rpartition("/")[2]):
            return True
        # "dir/**" matches "dir/" + anything, so it also matches the directory itself.
        return self._path_re is not None and bool(
            self._path_re.match(text) or (is_dir and self._path_re.match(text + "/"))
        )

    def excluded_anywhere(self, rel_path: bytes) -> bool:
        """True when the path or any of its parent directories is excluded (watcher events)."""
        parts = rel_path.split(b"/")
        for depth in range(1, len(parts)):
            if self.excluded(b"/".join(parts[:depth]), is_dir=True):
                return True
        return self.excluded(rel_path, is_dir=False)
