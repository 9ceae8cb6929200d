"""PostgreSQL's planner statistics, kept current after bulk writes.

PostgreSQL plans from per-table statistics that only ANALYZE gathers (autovacuum does it, when
it is on, a minute or more after the writes). A table a scan has just filled has none, and the
enrich step's query for the next files that are not ready was then planned as a bitmap over the
whole library: 46 ms per chunk of 500 instead of 0.3 ms, 200 chunks at 100k files. Statistics
that are stale are as bad: once the lifecycle pass has made 100k rows `ready`, statistics that
still say `new` can plan the idle tick's look-up of unsettled files as a walk through every
row. SQLite needs none of this: its planner works from the indexes alone (queries there use
`+library_id` for the one choice it gets wrong).

So the store counts the rows its committed transactions wrote per table, and analyzes a table
(after the commit, outside any transaction) once they reach the table's size at its last
ANALYZE, and at least `MIN_ROWS`: the statistics are never off by more than a factor of two, and
filling a table of N rows costs about log2(N / MIN_ROWS) ANALYZEs, ~0.06 s each at 100k rows (an
ANALYZE reads a sample of 30,000 rows whatever the table's size).
"""

from __future__ import annotations

import re
import threading
from typing import TYPE_CHECKING

from peewee import DatabaseError, InterfaceError

if TYPE_CHECKING:
    from daemon.store.db import Store

MIN_ROWS = 10_000
# The tables looked up by anything but their key; change_log is read by id only.
TRACKED = frozenset({"file", "insight", "tag"})
_WRITTEN_TABLE = re.compile(r"\s*(?:UPDATE|INSERT\s+INTO|DELETE\s+FROM)\s+(\w+)", re.I)


def written_table(sql: str) -> str | None:
    """The tracked table a DML statement writes, else None."""
    match = _WRITTEN_TABLE.match(sql)
    table = match.group(1).lower() if match else None
    return table if table in TRACKED else None


class Statistics:
    """Rows written per table since its last ANALYZE, for one store (all its threads)."""

    def __init__(self, store: Store):
        self.store = store
        self._lock = threading.Lock()
        self._written: dict[str, int] = {}
        self._rows_at_analyze: dict[str, float] = {}

    def committed(self, written: dict[str, int]) -> list[str]:
        """Count a committed transaction's rows; ANALYZE the tables that are due; the tables
        analyzed."""
        with self._lock:
            candidates = []
            for table, rows in written.items():
                self._written[table] = self._written.get(table, 0) + rows
                if self._written[table] >= MIN_ROWS:
                    candidates.append(table)
        due = [table for table in candidates
               if self._written[table] >= max(MIN_ROWS, self._rows_at(table))]
        analyzed = []
        for table in due:
            try:
                self.store.execute(f"ANALYZE {table}")
                self._rows_at_analyze[table] = self._reltuples(table)
            except (DatabaseError, InterfaceError):
                # The transaction has committed (a lock timeout, a connection lost since):
                # its caller must not see an error. The rows stay counted, and the next
                # commit tries again.
                continue
            with self._lock:
                self._written[table] = 0
            analyzed.append(table)
        return analyzed

    def _rows_at(self, table: str) -> float:
        if table not in self._rows_at_analyze:
            self._rows_at_analyze[table] = self._reltuples(table)
        return self._rows_at_analyze[table]

    def _reltuples(self, table: str) -> float:
        """The table's size as its last ANALYZE counted it (-1, never analyzed: 0)."""
        [(rows,)] = self.store.query(
            "SELECT reltuples FROM pg_class WHERE oid = to_regclass(?)", [table])
        return max(float(rows), 0.0)
