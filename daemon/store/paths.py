"""`file.path_text` as stored: '' where it is the path's bytes decoded as they are.

`rel_path` holds a file's exact name bytes and `path_text` the same name for people and for
glob matching, with undecodable bytes as `\\xNN` escapes (`models`). For a name that is valid
UTF-8, nearly every name, the two say the same: storing it twice cost ~16 B a file at 100k
files of the bench tree (short names; real libraries' paths are longer). So the column holds ''
then (a file's `rel_path` is never empty), and readers decode `rel_path`: in Python with
`shown`, in SQL with `text_sql`, which both backends evaluate only where the text is ''.
A row written with the text in full (an older assetd) reads the same.
"""

from __future__ import annotations

from daemon.units import path_text


def stored(rel_path: bytes, text: str) -> str:
    """What `path_text` holds for a file named `rel_path` whose text is `text`."""
    try:
        return "" if text.encode() == rel_path else text
    except UnicodeEncodeError:  # a lone surrogate: never a strict decode of any bytes
        return text


def stored_name(rel_path: bytes) -> str:
    """`stored(rel_path, path_text(rel_path))` with one decode."""
    try:
        rel_path.decode()
    except UnicodeDecodeError:
        return path_text(rel_path)
    return ""


def shown(rel_path: bytes | memoryview, stored_text: str) -> str:
    """The path text of a row whose `rel_path` and `path_text` columns are these."""
    return stored_text or path_text(bytes(rel_path))


def text_sql(alias: str, *, is_sqlite: bool) -> str:
    """SQL for the path text of the `file` row `alias`. A '' is only stored for a name that
    is valid UTF-8, so the strict decoding of PostgreSQL's convert_from never fails."""
    decoded = (f"CAST({alias}.rel_path AS TEXT)" if is_sqlite
               else f"convert_from({alias}.rel_path, 'UTF8')")
    return f"(CASE WHEN {alias}.path_text = '' THEN {decoded} ELSE {alias}.path_text END)"


def stored_sql(*, is_sqlite: bool) -> str:
    """SQL true for a `file` row whose `path_text` is its `rel_path` decoded (migration 5)."""
    encoded = "CAST(path_text AS BLOB)" if is_sqlite else "convert_to(path_text, 'UTF8')"
    return f"path_text <> '' AND {encoded} = rel_path"
