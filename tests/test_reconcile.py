"""The reconcile passes on hand-built rows, on SQLite and PostgreSQL."""

from __future__ import annotations

import pytest

from daemon import reconcile
from daemon.meta.enrichers import enricher_checksum, enricher_set_checksum
from daemon.store.models import STATE_ENRICHING, STATE_NEW, STATE_READY, Insight, Tag
from tests.meta import rows
from tests.meta.rows import HASH_A, HASH_B, HASH_C


@pytest.fixture
def config(store, tmp_path):
    return rows.make_config(store.url, tmp_path, enrichers=rows.no_builtins())


def run(store, config, step) -> int:
    with store.write_tx():
        return step(store, config)


def test_null_hash_fill_completes_tags_and_insights_by_path(store, config):
    lib = rows.library()
    rows.file(lib, "hashed.jpg", HASH_A)
    rows.file(lib, "unhashed.jpg", None)
    filled_tag = rows.tag(lib, "hashed.jpg", None, "keep")
    waiting_tag = rows.tag(lib, "unhashed.jpg", None, "later")
    orphan_tag = rows.tag(lib, "gone.jpg", None, "orphan")
    filled_insight = rows.insight(None, "note", generated_at=1.0, lib=lib, rel="hashed.jpg")

    assert run(store, config, reconcile.null_hash_fill) == 2
    assert Tag.get_by_id(filled_tag.id).content_hash == HASH_A
    assert Tag.get_by_id(waiting_tag.id).content_hash is None
    assert Tag.get_by_id(orphan_tag.id).content_hash is None
    assert Insight.get_by_id(filled_insight.id).content_hash == HASH_A
    assert run(store, config, reconcile.null_hash_fill) == 0


def test_null_hash_fill_matches_library_and_exact_path_bytes(store, config):
    lib, other = rows.library("lib"), rows.library("other")
    rows.file(other, "a.jpg", HASH_B)
    rows.file(lib, b"caf\xe9.jpg", HASH_C)  # not UTF-8
    in_lib = rows.tag(lib, "a.jpg", None, "t")
    raw = Tag.create(library=lib, rel_path=b"caf\xe9.jpg", content_hash=None, tag="t",
                     created_at=0.0)
    assert run(store, config, reconcile.null_hash_fill) == 1
    assert Tag.get_by_id(in_lib.id).content_hash is None
    assert Tag.get_by_id(raw.id).content_hash == HASH_C


def test_insight_collapse_keeps_the_earliest_current(store, config):
    late = rows.insight(HASH_A, "note", generated_at=30.0)
    early = rows.insight(HASH_A, "note", generated_at=10.0)
    middle = rows.insight(HASH_A, "note", generated_at=20.0)
    history = rows.insight(HASH_A, "note", generated_at=5.0, current=False)
    other_kind = rows.insight(HASH_A, "rating", generated_at=40.0)
    other_hash = rows.insight(HASH_B, "note", generated_at=50.0)

    assert run(store, config, reconcile.insight_collapse) == 2
    current = {i.id for i in Insight.select().where(Insight.is_current)}
    assert current == {early.id, other_kind.id, other_hash.id}
    assert Insight.select().count() == 6  # demoted, never deleted
    assert not Insight.get_by_id(history.id).is_current
    assert {late.id, middle.id}.isdisjoint(current)
    assert run(store, config, reconcile.insight_collapse) == 0


def test_insight_collapse_breaks_ties_by_id(store, config):
    first = rows.insight(HASH_A, "note", generated_at=10.0)
    rows.insight(HASH_A, "note", generated_at=10.0)
    assert run(store, config, reconcile.insight_collapse) == 1
    assert [i.id for i in Insight.select().where(Insight.is_current)] == [first.id]


def test_lifecycle_without_enrichers_goes_straight_to_ready(store, config):
    lib = rows.library()
    hashed = rows.file(lib, "a", HASH_A)
    unhashed = rows.file(lib, "b", None)
    assert run(store, config, reconcile.lifecycle) == 2  # new → enriching → ready
    assert rows.state_of(hashed) == STATE_READY
    assert rows.state_of(unhashed) == STATE_NEW
    assert run(store, config, reconcile.lifecycle) == 0


def test_lifecycle_waits_for_every_matching_enricher(store, tmp_path):
    enricher = {"name": "probe", "match": ["*.MP4"], "command": ["true"]}
    config = rows.make_config(store.url, tmp_path, enrichers=rows.no_builtins(enricher))
    (probe,) = config.enrichers
    lib = rows.library()
    video = rows.file(lib, "clips/a.mp4", HASH_A)
    text = rows.file(lib, "notes.txt", HASH_B)
    run(store, config, reconcile.lifecycle)
    assert rows.state_of(video) == STATE_ENRICHING
    assert rows.state_of(text) == STATE_READY

    # An insight of an older config of the enricher does not count.
    rows.insight(HASH_A, "probe", generated_at=1.0, source="probe", enricher_checksum="old")
    assert run(store, config, reconcile.lifecycle) == 0
    # The current config's result counts even once demoted (it ran; it must not run again).
    rows.insight(HASH_A, "probe", generated_at=2.0, current=False, source="probe",
                 enricher_checksum=enricher_checksum(probe))
    assert run(store, config, reconcile.lifecycle) == 1
    assert rows.state_of(video) == STATE_READY
    assert rows.checksum_of(video) == enricher_set_checksum(config.enrichers)


def test_lifecycle_accepts_a_current_user_insight_of_the_kind(store, tmp_path):
    enricher = {"name": "probe", "match": ["*"], "command": ["true"]}
    config = rows.make_config(store.url, tmp_path, enrichers=rows.no_builtins(enricher))
    video = rows.file(rows.library(), "a.mp4", HASH_A, state=STATE_ENRICHING)
    rows.insight(HASH_A, "probe", generated_at=1.0, current=False)
    assert run(store, config, reconcile.lifecycle) == 0
    rows.insight(HASH_A, "probe", generated_at=2.0)
    assert run(store, config, reconcile.lifecycle) == 1
    assert rows.state_of(video) == STATE_READY


def test_lifecycle_visits_no_waiting_file_while_an_every_file_enricher_has_no_insight(
        store, tmp_path, monkeypatch):
    """A library scanned with --no-enrich: its files all wait for an enricher that matches
    every path and has no insight in the index, so none can be ready, and the pass does not
    run the statement that checks each waiting file (~40 ms at 100k files)."""
    enricher = {"name": "probe", "match": ["*"], "command": ["true"]}
    config = rows.make_config(store.url, tmp_path, enrichers=rows.no_builtins(enricher))
    lib = rows.library()
    first = rows.file(lib, "a", HASH_A, state=STATE_ENRICHING)
    second = rows.file(lib, "b", HASH_B, state=STATE_NEW)
    statements: list[str] = []
    execute = store.execute
    monkeypatch.setattr(store, "execute",
                        lambda sql, *args: statements.append(sql) or execute(sql, *args))

    def readying() -> list[str]:
        return [sql for sql in statements if "SET state = ?, checksum_label = ?" in sql]

    assert run(store, config, reconcile.lifecycle) == 1  # b: new → enriching
    assert readying() == []
    rows.insight(HASH_C, "probe", generated_at=1.0)  # another content's: the pass runs
    assert run(store, config, reconcile.lifecycle) == 0
    assert len(readying()) == 1
    rows.insight(HASH_A, "probe", generated_at=1.0)
    assert run(store, config, reconcile.lifecycle) == 1
    assert (rows.state_of(first), rows.state_of(second)) == (STATE_READY, STATE_ENRICHING)


def test_lifecycle_sends_ready_back_when_the_enricher_set_changes(store, tmp_path, config):
    lib = rows.library()
    current = enricher_set_checksum(config.enrichers)
    up_to_date = rows.file(lib, "a", HASH_A, state=STATE_READY, enricher_checksum=current)
    stale = rows.file(lib, "b", HASH_B, state=STATE_READY, enricher_checksum="old")
    assert run(store, config, reconcile.lifecycle) == 2  # stale: → enriching → ready
    assert rows.checksum_of(stale) == current

    enricher = {"name": "probe", "match": ["b"], "command": ["true"]}
    changed = rows.make_config(store.url, tmp_path, enrichers=rows.no_builtins(enricher))
    assert run(store, changed, reconcile.lifecycle) == 3  # a: there and back; b waits
    assert rows.state_of(up_to_date) == STATE_READY
    assert rows.state_of(stale) == STATE_ENRICHING
    assert run(store, changed, reconcile.lifecycle) == 0


def test_lifecycle_leaves_other_hosts_libraries_alone(store, config):
    foreign = rows.file(rows.library("elsewhere"), "a", HASH_A)
    assert run(store, config, reconcile.lifecycle) == 0
    assert rows.state_of(foreign) == STATE_NEW


def test_run_passes_reports_each_pass_and_is_idempotent(store, config):
    lib = rows.library()
    rows.file(lib, "a", HASH_A)
    rows.tag(lib, "a", None, "t")
    rows.insight(None, "note", generated_at=1.0, lib=lib, rel="a")
    rows.insight(HASH_A, "note", generated_at=2.0)
    first = reconcile.run_passes(store, config)
    assert first == {"null_hash_fill": 2, "insight_collapse": 1, "lifecycle": 2}
    assert list(first) == [name for name, _ in reconcile.PASSES]
    assert reconcile.run_passes(store, config) == dict.fromkeys(first, 0)


def test_ticks_collapse_only_what_is_new_and_miss_nothing(store, config):
    """The daemon's ticks pass a watermark: groups with no insight newer than the last run are
    not looked at, a duplicate made since is still collapsed, and a NULL-hash fill (which
    gives old rows a hash) makes the run look at everything again."""
    watermark = reconcile.Watermark()
    early = rows.insight(HASH_A, "note", generated_at=10.0)
    assert reconcile.run_passes(store, config, watermark)["insight_collapse"] == 0
    assert watermark.insight_id == early.id

    later = rows.insight(HASH_A, "note", generated_at=20.0)  # a duplicate made after the run
    assert reconcile.run_passes(store, config, watermark)["insight_collapse"] == 1
    assert not Insight.get_by_id(later.id).is_current and Insight.get_by_id(early.id).is_current

    lib = rows.library()
    rows.file(lib, "b.jpg", HASH_B)
    old = rows.insight(HASH_B, "note", generated_at=5.0)
    unhashed = rows.insight(None, "note", generated_at=50.0, lib=lib, rel="b.jpg")
    watermark.insight_id = unhashed.id  # both already seen: only the fill makes them a group
    changes = reconcile.run_passes(store, config, watermark)
    assert changes["null_hash_fill"] == 1 and changes["insight_collapse"] == 1
    assert Insight.get_by_id(old.id).is_current and not Insight.get_by_id(unhashed.id).is_current
