"""Which files an enricher's `match` globs select, in Python and in SQL, with one meaning.

A pattern has only `*` (any run of characters, `/` included) and `?` (one character); the
config rejects `[` and `]`. It is matched against the whole relative path (`file.path_text`),
ignoring the case of ASCII letters only.

Both sides must agree exactly: the lifecycle pass (SQL) waits for every enricher that matches
a file, and the enrich runner (Python) runs the ones it thinks match, so a disagreement would
leave a file `enriching` forever. SQLite's LIKE already folds ASCII case and only ASCII case.
PostgreSQL's ILIKE would also fold `É`/`é` by the database's locale, so there the path is
ASCII-lowered with `translate()` and compared with a plain LIKE against the ASCII-lowered
pattern, which is exactly what SQLite and Python do.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

_UPPER, _LOWER = "ABCDEFGHIJKLMNOPQRSTUVWXYZ", "abcdefghijklmnopqrstuvwxyz"
_ASCII_LOWER = str.maketrans(_UPPER, _LOWER)
LIKE_ESCAPE = "\\"
MATCHES_EVERY_PATH = "1 = 1"  # `sql_match`'s condition where a glob is `*`


def ascii_lower(text: str) -> str:
    return text.translate(_ASCII_LOWER)


class GlobSet:
    """Matches any of these globs; compiled once, used for many paths."""

    def __init__(self, patterns: Iterable[str]):
        parts = [
            "".join({"*": ".*", "?": "."}.get(char, re.escape(char)) for char in ascii_lower(p))
            for p in patterns
        ]
        self._regex = re.compile("(?:" + "|".join(parts) + ")", re.S) if parts else None

    def matches(self, path_text: str) -> bool:
        return self._regex is not None and self._regex.fullmatch(ascii_lower(path_text)) is not None


def glob_to_like(pattern: str) -> str:
    """The LIKE pattern (ESCAPE '\\') for a glob, ASCII-lowered."""
    out = []
    for char in ascii_lower(pattern):
        if char in ("%", "_", LIKE_ESCAPE):
            out.append(LIKE_ESCAPE + char)
        else:
            out.append({"*": "%", "?": "_"}.get(char, char))
    return "".join(out)


def sql_match(
    patterns: Iterable[str], column: str, *, is_sqlite: bool
) -> tuple[str, list[str]]:
    """A SQL condition (with `?` parameters) true when `column` matches any of the globs."""
    subject = column if is_sqlite else f"translate({column}, '{_UPPER}', '{_LOWER}')"
    likes = [glob_to_like(p) for p in patterns]
    if not likes:
        return "1 = 0", []
    if "%" in likes:
        # `*` (every enricher's default) selects every path: nothing to compute per row, where
        # PostgreSQL's translate() cost a string copy per file and enricher (the lifecycle
        # pass asks for every enricher: 5 per file).
        return MATCHES_EVERY_PATH, []
    if not is_sqlite:
        # One translate() (and the path's text) a row, compared with each pattern: spelled
        # as an OR of LIKEs, PostgreSQL computed them once per pattern, and the lifecycle
        # pass's condition names ~50 (the media built-ins' extensions): 120 µs a file, 1.2 s
        # per 10,000-file part of the daemon's startup scan with `mime` off. LIKE's default
        # escape character is the backslash, `LIKE_ESCAPE`.
        return f"({subject} LIKE ANY (ARRAY[{', '.join('?' for _ in likes)}]))", likes
    clause = " OR ".join(f"{subject} LIKE ? ESCAPE '{LIKE_ESCAPE}'" for _ in likes)
    return f"({clause})", likes
