"""Media built-ins choose files by content; the runner and the lifecycle pass agree on it."""

from __future__ import annotations

from daemon.meta.enrich import enrich_library
from daemon.reconcile import run_passes
from daemon.scan.scanner import scan
from daemon.store import labels
from daemon.store.models import File, Insight
from tests.conftest import write_tree
from tests.media import jpeg_bytes
from tests.meta import rows

FILES = {"photo.txt": jpeg_bytes(), "fake.jpg": "plain text, not a picture", "notes": "text"}


def kinds_by_path(store) -> dict[str, set[str]]:
    by_hash: dict[str, set[str]] = {}
    kinds = dict(store.query(f"SELECT id, text FROM {labels.TABLE}"))
    for insight in Insight.select().where(Insight.is_current):
        by_hash.setdefault(insight.content_hash, set()).add(kinds[insight.kind_label])
    return {bytes(f.rel_path).decode(): by_hash.get(f.content_hash, set())
            for f in File.select()}


def run(store, config):
    scan(store, config, [], [])
    enrich_library(store, config, config.libraries[0])
    run_passes(store, config)


def test_the_bytes_decide_and_every_file_ends_ready(store, tmp_path):
    config = rows.make_config(store.url, tmp_path, enrichers=[
        {"name": "video", "enabled": False}])
    write_tree(tmp_path / "lib", FILES)
    run(store, config)
    assert kinds_by_path(store) == {
        "photo.txt": {"mime", "image", "phash"}, "fake.jpg": {"mime"}, "notes": {"mime"}}
    assert {f.state for f in File.select()} == {"ready"}


def test_without_mime_the_extension_decides(store, tmp_path):
    config = rows.make_config(store.url, tmp_path, enrichers=[
        {"name": "mime", "enabled": False}, {"name": "video", "enabled": False}])
    write_tree(tmp_path / "lib", FILES)
    run(store, config)
    kinds = kinds_by_path(store)
    assert kinds["photo.txt"] == set() and kinds["notes"] == set()
    assert kinds["fake.jpg"] == {"image", "phash"}  # errors, but results: nothing waits
    assert {f.state for f in File.select()} == {"ready"}
