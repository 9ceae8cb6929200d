"""The built-in `mime` insight from the bytes the hash read: a new file is read once.

A cold `scan` used to hash every file and then, in the enrich step, open and read each one
again for its first 4 KiB: 16x `xxhsum` at 1M files instead of ~4x. When the scan will be
followed by enrichment (`ScanOptions.sniff`), the hash keeps the first `mime.SNIFF_BYTES`
bytes and `mime.detect_buffer_json` runs on them where they were read (a worker process); the
scan records the insight exactly as the enrich runner would (same source and enricher
checksum), so the runner finds that content satisfied and reads nothing. Content that
already has a satisfying insight (a copy, or another library's) gets none twice; `_known`
asks `insights.satisfied_condition`'s question of the rows it fetches by (hash, kind).
"""

from __future__ import annotations

import json
import time
from typing import Any

from daemon.config import Config, EnricherConfig
from daemon.meta import mime
from daemon.meta.enrichers import enricher_checksum
from daemon.meta.insights import (
    INSIGHT_COLUMNS,
    NewInsight,
    insight_changes,
    record_insights,
    stored_rows,
)
from daemon.meta.match import GlobSet
from daemon.scan.hash import Hashed, Sniffer
from daemon.store import Store, labels
from daemon.store.hashes import all_to_db, from_db
from daemon.store.models import Insight

LOOKUP_CHUNK = 500


class SniffedInsights:
    """Collects sniffed values (their JSON text) per rel_path and records them once their
    part is applied."""

    def __init__(self, config: Config):
        self.enricher: EnricherConfig | None = next(
            (e for e in config.enrichers if e.builtin and e.name == "mime"), None)
        self.checksum = enricher_checksum(self.enricher) if self.enricher else ""
        self.globs = GlobSet(self.enricher.match) if self.enricher else None
        self.values: dict[bytes, Any] = {}

    @property
    def sniffer(self) -> Sniffer | None:
        return mime.detect_buffer_json if self.enricher else None

    head_bytes = mime.SNIFF_BYTES
    # Run by the hasher before its pool forks the workers, which would each import
    # python-magic for their first file; not sooner: a rescan with nothing new reads no file.
    before_pool = staticmethod(mime.preload)

    def add(self, rel_path: bytes, value: Any) -> None:
        if value is not None:
            self.values[rel_path] = value

    def record(self, store: Store, library_id: int, hashes: dict[bytes, Hashed]) -> int:
        """Record the insights of the files in `hashes` (just applied); returns how many."""
        if self.enricher is None:
            return 0
        now = time.time()
        every_file = "*" in self.enricher.match
        by_hash: dict[str, NewInsight] = {}
        for rel_path, hashed in hashes.items():
            value = self.values.pop(rel_path, None)
            if value is None or hashed.content_hash in by_hash:
                continue
            if not every_file and not self.globs.matches(
                    rel_path.decode("utf-8", "backslashreplace")):
                continue
            by_hash[hashed.content_hash] = NewInsight(
                hashed.content_hash, library_id, rel_path, self.enricher.name, value,
                self.enricher.name, self.checksum, now)
        satisfied, current = self._known(store, list(by_hash))
        for content_hash in satisfied:
            del by_hash[content_hash]
        # A current insight of another config is demoted (record_insights); new content,
        # nearly all of a cold scan, is a plain bulk insert.
        stale = [by_hash.pop(h) for h in current if h in by_hash]
        record_insights(store, [i._replace(value=json.loads(i.value)) for i in stale])
        new = list(by_hash.values())
        with store.write_tx():
            rows = stored_rows(store, new, [i.value for i in new])
            store.insert_rows(Insight, INSIGHT_COLUMNS, rows)
            store.record_changes(insight_changes(store, new))
        return len(rows)

    def _known(self, store: Store, hashes: list[str]) -> tuple[set[str], set[str]]:
        """Hashes with an insight that satisfies the enricher (`satisfied_condition`, here
        evaluated on the rows), and hashes with a current one of its kind."""
        name, satisfied, current = self.enricher.name, set(), set()
        for start in range(0, len(hashes), LOOKUP_CHUNK):
            chunk = all_to_db(hashes[start:start + LOOKUP_CHUNK])
            for digest, source, checksum, is_current in store.query(
                f"SELECT i.content_hash, s.text, c.text, i.is_current FROM insight i"
                f" LEFT JOIN {labels.TABLE} s ON s.id = i.source_label"
                f" LEFT JOIN {labels.TABLE} c ON c.id = i.checksum_label"
                " WHERE i.content_hash IN (" + ", ".join("?" for _ in chunk) + ")"
                f" AND {labels.insight_kind_is('i')}",
                [*chunk, name],
            ):
                content_hash = from_db(digest)
                if is_current:
                    current.add(content_hash)
                if (source == name and checksum == self.checksum) or (
                        is_current and source != name):
                    satisfied.add(content_hash)
        return satisfied, current
