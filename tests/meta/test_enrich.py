"""The enrich runner in-process: what is pending, once per hash, the stat guard, budgets."""

from __future__ import annotations

import os
import sys

import pytest

from daemon.meta.enrich import enrich_libraries, enrich_library, pending_work
from daemon.reconcile import run_passes
from daemon.scan.scanner import scan
from daemon.store import queries
from daemon.store.models import STATE_ENRICHING, File, Insight
from tests.conftest import write_tree
from tests.meta import rows

COUNTER_SCRIPT = (
    "import json, sys; open(sys.argv[1], 'a').write(sys.argv[2] + '\\n');"
    "print(json.dumps({'seen': sys.argv[2].rsplit('/', 1)[-1]}))"
)


@pytest.fixture
def world(store, tmp_path):
    counter = tmp_path / "runs.log"
    counting = {"name": "count", "match": ["*.dat"], "timeout": 10,
                "command": [sys.executable, "-c", COUNTER_SCRIPT, str(counter), "{path}"]}
    config = rows.make_config(store.url, tmp_path, enrichers=rows.no_builtins(counting))
    root = tmp_path / "lib"
    write_tree(root, {"a.dat": "same", "copy/a.dat": "same", "b.dat": "other", "c.txt": "x"})
    scan(store, config, [], [])
    return config, root, counter


def runs(counter) -> list[str]:
    return counter.read_text().splitlines() if counter.exists() else []


def test_runs_once_per_hash_and_only_on_matching_paths(store, world):
    config, _, counter = world
    library = config.libraries[0]
    assert enrich_library(store, config, library) == 2
    assert sorted(os.path.basename(p) for p in runs(counter)) == ["a.dat", "b.dat"]
    assert Insight.select().where(Insight.source_label == rows.label_id("count")).count() == 2
    assert {f.state for f in File.select()} == {STATE_ENRICHING}
    assert enrich_library(store, config, library) == 0
    assert len(runs(counter)) == 2


def test_copies_in_later_chunks_are_not_run_again(store, world, monkeypatch):
    """Memory is one chunk's: what ran is written before the next chunk is read, and the
    database, not a set of everything seen, says a copy's content is done."""
    config, root, counter = world
    monkeypatch.setattr("daemon.meta.enrich._CHUNK_FILES", 1)
    write_tree(root, {f"more/{i}.dat": "same" for i in range(4)})
    scan(store, config, [], [])
    assert enrich_library(store, config, config.libraries[0]) == 2
    assert len(runs(counter)) == 2  # "same" once, "other" once, whatever the chunking


def test_nothing_pending_for_ready_files_under_the_current_set(store, world):
    config, _, _ = world
    library_id = queries.get_library("lib").id
    assert len(list(pending_work(store, config, library_id))) == 2
    enrich_library(store, config, config.libraries[0])
    run_passes(store, config)
    assert list(pending_work(store, config, library_id)) == []


def test_a_file_changed_since_hashing_is_left_for_the_next_scan(store, world):
    config, root, counter = world
    (root / "b.dat").write_text("changed!")
    (root / "a.dat").unlink()
    assert enrich_library(store, config, config.libraries[0]) == 0
    assert runs(counter) == []
    scan(store, config, [], [])
    assert enrich_library(store, config, config.libraries[0]) == 2
    assert sorted(os.path.relpath(p, root) for p in runs(counter)) == ["b.dat", "copy/a.dat"]


def test_budget_and_scope(store, world):
    config, _, counter = world
    assert enrich_library(store, config, config.libraries[0], budget_s=0) == 0
    assert enrich_libraries(store, config, []) == 0
    assert runs(counter) == []
    assert enrich_libraries(store, config, ["lib"], budget_s=30) == 2


def test_offline_library_is_skipped(store, world, tmp_path):
    config, root, counter = world
    root.rename(tmp_path / "unplugged")
    assert enrich_library(store, config, config.libraries[0]) == 0
    assert runs(counter) == []
