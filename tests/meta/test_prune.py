"""`prune` at scale: the `pruned` changes of every row it deletes, read in SQL, never the rows
held in this process."""

from __future__ import annotations

import os
import time

from daemon.config import load_config
from daemon.meta.prune import prune
from daemon.scan.scanner import ScanOptions, scan
from daemon.store import changes

FILES = 40


def test_every_pruned_row_is_a_change_in_id_order_and_none_is_held(env, store, monkeypatch):
    photos = env.library("photos", {f"p{i:02d}": f"photo {i}" for i in range(FILES)})
    usb = env.library("usb", {f"u{i:02d}": f"usb {i}" for i in range(FILES)})
    (photos / "caf\xe9.jpg").write_text("café")
    os.close(os.open(os.fsencode(usb) + b"/\xff.bin", os.O_CREAT | os.O_WRONLY))  # not UTF-8
    config = load_config(str(env.config_path))
    scan(store, config, [], [], options=ScanOptions(allow_mass_missing=True))
    (photos / "unhashed.jpg").write_text("later")
    scan(store, config, ["photos"], [], options=ScanOptions(hash_files=False))
    gone = sorted(store.query("SELECT f.id, l.name, f.rel_path, f.content_hash FROM file f"
                              " JOIN library l ON l.id = f.library_id WHERE f.rel_path <> ?",
                              [b"p00"]))
    for library_root in (photos, usb):
        for name in os.listdir(library_root):
            if name != "p00":
                os.unlink(os.path.join(library_root, name))
    scan(store, config, [], [], options=ScanOptions(allow_mass_missing=True))
    last_before = changes.read(store).last_id

    assert prune(store, 0, dry_run=True).files == len(gone)
    assert changes.read(store, last_before).rows == []  # a dry run records nothing

    largest = 0
    query = store.query

    def spied_query(text, params=()):
        nonlocal largest
        rows = query(text, params)
        largest = max(largest, len(rows))
        return rows

    monkeypatch.setattr(store, "query", spied_query)
    result = prune(store, 0, dry_run=False, now=time.time() + 1)
    monkeypatch.undo()
    assert result.files == len(gone)
    assert largest < len(gone) // 10  # the pruned rows never came into this process

    pruned = changes.read(store, last_before).rows
    assert [c.kind for c in pruned] == ["pruned"] * len(gone)
    assert [(c.library, c.path, c.content_hash) for c in pruned] == [
        (name, bytes(rel).decode("utf-8", "backslashreplace"),
         None if digest is None else changes.hashes.from_db(digest))
        for _, name, rel, digest in gone]
    assert ("usb", "\\xff.bin") in {(c.library, c.path) for c in pruned}
    assert next(c for c in pruned if c.path == "unhashed.jpg").content_hash is None
    # The copy it read them from is gone with the transaction: a second prune makes another.
    (photos / "p00").unlink()
    scan(store, config, ["photos"], [])
    assert prune(store, 0, dry_run=False, now=time.time() + 1).files == 1
    assert [(c.kind, c.path) for c in changes.read(store, pruned[-1].id).rows] == [
        ("missing", "p00"), ("pruned", "p00")]
