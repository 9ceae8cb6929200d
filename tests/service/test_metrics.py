"""The scrape's file counts at scale: counted again only when the index may have changed, and
no more often than keeps counting under `COUNT_CPU_SHARE` of a core (at a million files one
count is 0.3 s; a scrape every 15 s spent 2 % of a core on it)."""

from __future__ import annotations

from daemon.service import metrics
from daemon.service.metrics import DaemonView, IndexCollector
from daemon.store import Store


class Clock:
    """Each reading 10 ms after the last: a count costs 10 ms, and waits 2 s to be redone."""

    def __init__(self) -> None:
        self.now_s = 1000.0

    def __call__(self) -> float:
        self.now_s += 0.01
        return self.now_s


def present(collector: IndexCollector) -> float:
    families = {family.name: family for family in collector.collect()}
    assert families["assetd_database_up"].samples[0].value == 1
    return sum(sample.value for sample in families["assetd_files"].samples
               if sample.labels["state"] != "missing")


def test_counts_are_kept_until_the_index_changes_and_their_cost_allows(env, monkeypatch):
    root = env.library("photos", {"a.jpg": "a", "b.jpg": "b"})
    env.cli("scan", "--no-enrich")
    store = Store(env.db_url)  # the HTTP thread's own connection
    counted = []
    query = store.query

    def spied_query(text, params=()):
        if text == metrics.FILE_COUNTS_SQL:
            counted.append(text)
        return query(text, params)

    monkeypatch.setattr(store, "query", spied_query)
    clock = Clock()
    view = DaemonView(libraries=lambda: ["photos"], online=lambda name: True,
                      inotify_watches=dict, last_tick_s=lambda: None)
    collector = IndexCollector(store, view, clock=clock)
    try:
        assert present(collector) == 2 and len(counted) == 1
        assert present(collector) == 2 and len(counted) == 1  # nothing changed, no time passed

        (root / "c.jpg").write_text("c")
        env.cli("scan", "--no-enrich")
        assert present(collector) == 2 and len(counted) == 1  # too soon after the last count
        clock.now_s += 3600
        assert present(collector) == 3 and len(counted) == 2  # changed, and the cost allows

        clock.now_s += 3600
        present(collector)
        # SQLite says nothing changed: not counted again; PostgreSQL cannot tell: counted.
        assert len(counted) == (2 if store.is_sqlite else 3)
    finally:
        store.close()
