"""Fast-path keys: a file's (rel_path, size, mtime_ns, inode, device) as bytes.

The walk spells its files' keys this way (`scan/walk.py`) and the database its rows' keys
(`store/queries.key_pages`, in SQL): a run of a no-change rescan is then one bytes comparison
against the database's page, with no Python object per file or per row. A leaf module, so
that the scan and the store share the format without importing each other, and the walkers
(child processes) import no database code.
"""

from __future__ import annotations

from collections.abc import Iterable

# One file's key: `rel_path NUL size mtime_ns inode device NUL`. A path holds no NUL byte, so
# a concatenation of records reads back one way only, and two equal concatenations are the
# same files.
KEY_RECORD = b"%b\0%d %d %d %d\0"


def encode_keys(entries: Iterable[tuple]) -> bytes:
    """`KEY_RECORD` of each entry (a `DiskEntry` or a plain tuple in its field order)."""
    return b"".join(map(KEY_RECORD.__mod__, entries))


def decode_keys(keys: bytes) -> list[tuple]:
    """The entries (plain tuples in DiskEntry's order) that `encode_keys` spelled `keys`."""
    fields = keys.split(b"\0")
    numbers = map(int, b" ".join(fields[1::2]).split())
    return list(zip(fields[0:-1:2], numbers, numbers, numbers, numbers, strict=True))


def last_path(keys: bytes) -> bytes:
    """The rel_path of the last record of non-empty `keys`."""
    return keys[:-1].rsplit(b"\0", 2)[-2]
