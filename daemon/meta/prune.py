"""`prune`: the only hard deletion. Files missing for longer than a cutoff, then orphans.

A tag or insight is an orphan when no file row refers to it any more: by content hash, or,
for a row still without a hash, by (library, rel_path). Missing-but-recent files keep their
metadata: the disk may come back. A dry run performs the same deletes in a transaction that
is rolled back, so its counts are exactly what a real run would delete.
"""

from __future__ import annotations

import time
from typing import NamedTuple

from daemon.store import Store
from daemon.store import changes as feed


class PruneResult(NamedTuple):
    dry_run: bool
    files: int
    tags: int
    insights: int


class _RollBack(Exception):
    pass


def _orphaned(table: str) -> str:
    return (
        f"DELETE FROM {table} WHERE (content_hash IS NOT NULL AND NOT EXISTS (SELECT 1 FROM file"
        f" f WHERE f.content_hash = {table}.content_hash)) OR (content_hash IS NULL AND NOT EXISTS"
        f" (SELECT 1 FROM file f WHERE f.library_id = {table}.library_id"
        f" AND f.rel_path = {table}.rel_path))"
    )


def _prunable(alias: str = "") -> str:
    """SQL true for a `file` row missing since before the cutoff (the parameter)."""
    return (f"{alias}is_missing AND {alias}missing_since IS NOT NULL"
            f" AND {alias}missing_since < ?")


def prune(store: Store, older_than_s: float, *, dry_run: bool, now: float | None = None
          ) -> PruneResult:
    cutoff = (time.time() if now is None else now) - older_than_s
    counts: list[int] = []
    try:
        with store.write_tx():
            if not dry_run:
                # Their changes are read from a copy made in SQL before the DELETE, and
                # written at commit (changes.PrunedRows): no Python object a row.
                libraries = feed.create_pruned_table(store, _prunable("f."), [cutoff])
                store.record_changes([feed.PrunedRows(tuple(libraries))])
            counts.append(store.execute(
                f"DELETE FROM file WHERE {_prunable()}", [cutoff]).rowcount)
            counts.append(store.execute(_orphaned("tag")).rowcount)
            counts.append(store.execute(_orphaned("insight")).rowcount)
            if dry_run:
                raise _RollBack
    except _RollBack:
        pass
    return PruneResult(dry_run, *counts)
