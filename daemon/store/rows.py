"""The rows the store reads for a scan's merge, as the scan takes them: they live here, in the
lower layer, so that `queries` need not import the scan (`scan/plan.py` decides with them)."""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple


class DbRow(NamedTuple):
    id: int
    rel_path: bytes
    size: int
    mtime_ns: int
    inode: int
    device: int
    content_hash: str | None
    is_missing: bool
    state: str


class KeyPage(NamedTuple):
    """A page of the database side of a merge, in rel_path order: its rows' `row_key`s
    encoded as the walk encodes its files' (`keys.KEY_RECORD`; `plan.encode_row_keys`), its
    last rel_path, and how to read its full rows (only needed where a key does not match the
    disk): `load(start, limit)`, the page's rows from the path `start` on, in order, at most
    `limit`."""

    keys: bytes
    last: bytes
    load: Callable[[bytes, int], list[DbRow]]
