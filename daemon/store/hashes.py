"""Content hashes as the database stores them: the 16 bytes of the XXH3-128 digest.

Everything above the store speaks `xxh128:` + 32 hex digits (the contract's form); the text
form cost 39 bytes a value where the digest is 16, on every row and index entry that holds one
(`file`, `tag`, `insight` and their indexes, the change feed): 538 -> ~420 B a file at 100k
files (bench/README.md). ORM queries convert through `models.HashField`; raw SQL passes
`to_db(text)` and reads `from_db(column)`.
"""

from __future__ import annotations

from collections.abc import Iterable

PREFIX = "xxh128:"
# `to_db` as an SQL function of every SQLite connection (`db._open`), for `to_db_sql`.
SQLITE_DIGEST_FUNCTION = "assetd_digest"
_TEXT_LENGTH = len(PREFIX) + 32


def to_db(content_hash: str | None) -> bytes | None:
    if content_hash is None:
        return None
    if len(content_hash) != _TEXT_LENGTH or not content_hash.startswith(PREFIX):
        raise ValueError(f"not a content hash: {content_hash!r}")
    return bytes.fromhex(content_hash[len(PREFIX):])


def all_to_db(content_hashes: Iterable[str]) -> list[bytes]:
    """`to_db` of each (an `IN (...)` list)."""
    return [to_db(text) for text in content_hashes]


def from_db(digest: bytes | memoryview | None) -> str | None:
    return None if digest is None else PREFIX + bytes(digest).hex()


def to_db_sql(column: str, *, is_sqlite: bool) -> str:
    """SQL for `to_db(column)`, where a statement turns text hashes into digests (migrations
    4 and 5): SQLite 3.40 has no unhex()."""
    if is_sqlite:
        return f"{SQLITE_DIGEST_FUNCTION}({column})"
    return f"decode(substr({column}, {len(PREFIX) + 1}), 'hex')"
