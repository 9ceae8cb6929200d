"""`assetd verify` at scale: the rows a page at a time, the files hashed in the pool, and the
same answers at every page boundary as the one comparison (`compare_file`) gives."""

from __future__ import annotations

import json
import os

import pytest

from daemon.config import load_config
from daemon.meta import verify
from daemon.scan import hashpool
from daemon.scan.scanner import scan
from daemon.store.hashes import from_db
from tests.conftest import without_dac_override

PAGE_ROWS = 7
FILES = hashpool.POOL_MIN_FILES + 44  # enough for the pool of hash workers


def rot(path) -> None:
    """Other bytes behind the same size and mtime."""
    st = os.stat(path)
    data = bytearray(path.read_bytes())
    data[0] ^= 1
    path.write_bytes(bytes(data))
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))


def test_pages_and_pool_give_each_file_its_own_answer(env, store, monkeypatch):
    names = [f"f{i:04d}" for i in range(FILES)]
    root = env.library("photos", {name: f"bytes of {name}" for name in names})
    env.library("other", {name: f"other {name}" for name in names[:20]})
    config = load_config(str(env.config_path))
    scan(store, config, [], [])
    rotten = [names[i] for i in (0, PAGE_ROWS - 1, PAGE_ROWS, 2 * PAGE_ROWS, FILES - 1)]
    for name in rotten:
        rot(root / name)
    (root / names[3]).unlink()  # gone since indexed: skipped
    (root / names[4]).write_text("edited")  # a real edit (new size): skipped
    (root / names[5]).unlink()
    (root / names[5]).symlink_to(root / names[6])  # replaced by a symlink: skipped

    monkeypatch.setattr(verify, "VERIFY_PAGE_ROWS", PAGE_ROWS)
    largest_page = 0
    query = store.query

    def spied_query(text, params=()):
        nonlocal largest_page
        rows = query(text, params)
        if text == verify._PAGE:
            largest_page = max(largest_page, len(rows))
        return rows

    monkeypatch.setattr(store, "query", spied_query)
    report = verify.verify(store, config, ["photos"])

    assert largest_page == PAGE_ROWS  # never the whole library at once
    assert [m.rel_path.decode() for m in report.mismatches] == rotten
    assert all(m.library == "photos" and m.actual != m.expected for m in report.mismatches)
    assert report.checked == FILES - 3 and report.errors == []
    # The same answers as the one comparison gives file by file.
    for name in rotten + names[3:6]:
        row = store.query("SELECT size, mtime_ns, content_hash FROM file WHERE rel_path = ?"
                          " AND library_id = (SELECT id FROM library WHERE name = 'photos')",
                          [name.encode()])[0]
        compared = verify.compare_file(os.fsencode(root), name.encode(), row[:2],
                                       from_db(row[2]), follow_symlinks=False)
        expected = verify.Outcome.MISMATCH if name in rotten else verify.Outcome.SKIPPED
        assert compared.outcome == expected


@pytest.mark.skipif(not without_dac_override(), reason="needs root to drop its own override")
def test_an_unreadable_file_is_an_error_among_many(sqlite_env):
    files = {f"f{i:04d}": f"bytes {i}" for i in range(FILES)}
    root = sqlite_env.library("photos", files)
    sqlite_env.cli("scan", "--no-enrich")
    (root / "f0100").chmod(0)
    out = sqlite_env.cli("verify", "--json", check=1, wrapper=without_dac_override())
    report = json.loads(out.stdout)
    assert report["status"] == "ok" and report["checked"] == FILES - 1
    assert [(e["path"], e["error"].split(":")[0]) for e in report["errors"]] == [
        ("f0100", "PermissionError")]
