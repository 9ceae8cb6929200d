"""The database side of a rescan's merge: `queries.key_pages` has the database spell each
row's fast-path key exactly as the walk spells a file's (`keys.KEY_RECORD`), so an unchanged
run is one bytes comparison. Any byte it spelled differently would make every rescan re-read
files, or (worse) let a changed file pass as unchanged."""

from __future__ import annotations

import time

from daemon.keys import encode_keys
from daemon.scan.plan import encode_row_keys, row_key
from daemon.store import queries
from daemon.store.models import STATE_READY, File
from daemon.store.rows import DbRow
from tests.meta.rows import HASH_A, library

# Names a merge must keep apart: spaces and digits (the record's field separator and its
# fields), a newline, non-UTF-8 bytes, `a.txt` < `a/x` < `ab` (byte order around "/").
NAMES = [b"a b 1 2", b"a.txt", b"a/x", b"a/\xff\xfe", b"a/y\nz", b"ab", b"dir/1",
         b"dir/2", b"dir.txt", b"z" * 200]


def add_rows(lib, names=NAMES) -> list[DbRow]:
    rows = []
    for i, name in enumerate(names):
        # Negative inodes and devices (unsigned 64-bit stored signed), a 19-digit mtime, a
        # row never hashed and a missing one: their keys match no file.
        content_hash = None if i == 3 else HASH_A
        missing = i == 5
        created = File.create(
            library=lib, rel_path=name, path_text=name.decode("utf-8", "replace"),
            size=i * 1000, mtime_ns=1796455664182358339 + i, inode=-(2 ** 63) + i if i % 2
            else 2 ** 40 + i, device=-7 if i == 6 else 65024, content_hash=content_hash,
            is_missing=missing, missing_since=1.0 if missing else None, state=STATE_READY,
            first_seen=int(time.time()), last_seen=int(time.time()))
        rows.append(DbRow(created.id, name, created.size, created.mtime_ns, created.inode,
                          created.device, content_hash, missing, STATE_READY))
    return sorted(rows, key=lambda r: r.rel_path)


def keys_of(store, lib, scope=b"", page_rows=3) -> list:
    return list(queries.key_pages(store, lib.id, scope, page_rows=page_rows))


def test_the_database_spells_each_key_as_the_walk_does(store):
    lib = library("lib")
    rows = add_rows(lib)
    pages = keys_of(store, lib)
    assert b"".join(page.keys for page in pages) == encode_row_keys(rows)
    assert [len(page.keys.split(b"\0")) // 2 for page in pages] == [3, 3, 3, 1]
    assert [page.last for page in pages] == [rows[i].rel_path for i in (2, 5, 8, 9)]
    # A settled row's key is the walk's record of the same file, byte for byte.
    settled = [r for r in rows if r.content_hash and not r.is_missing]
    assert encode_row_keys(settled) == encode_keys(map(row_key, settled))
    # Each page loads its own full rows, from a path on, at most as many as asked.
    assert [r.id for page in pages for r in page.load(b"", 100)] == [r.id for r in rows]
    second = pages[1]
    assert [r.id for r in second.load(rows[4].rel_path, 1)] == [rows[4].id]
    assert [r.id for r in second.load(rows[4].rel_path, 100)] == [rows[4].id, rows[5].id]


def test_scoped_pages_hold_the_scope_and_its_subtree_only(store):
    lib = library("lib")
    rows = {r.rel_path: r for r in add_rows(lib)}
    other = library("other")
    add_rows(other, [b"dir/1", b"dir/3"])
    by_dir = keys_of(store, lib, b"dir", page_rows=1)
    assert b"".join(p.keys for p in by_dir) == encode_row_keys([rows[b"dir/1"], rows[b"dir/2"]])
    assert b"".join(p.keys for p in keys_of(store, lib, b"a.txt")) == encode_row_keys(
        [rows[b"a.txt"]])
    assert keys_of(store, lib, b"nothing") == []


def test_an_empty_library_has_no_pages(store):
    assert keys_of(store, library("lib")) == []
