"""Hashing on every core, overlapped with the walk.

Hashing is CPU-bound Python around xxhash (open, fstat, readv, fstat, close: ~20 µs per
small file) and the GIL serialises threads, so a scan of many files hands them, in batches of
paths, to a pool of worker processes (one per core) and goes on walking and merging while they
read. Batches are `BATCH_FILES` files or `BATCH_BYTES` bytes: a part of a scan (10,000 files)
is ten batches or more, so both workers stay busy and a stop waits for ~15 ms of work; a
batch costs this process ~0.1-0.2 ms (a future, two threads of the executor, the pickles), so
128-file batches cost it ~0.1 s per 100k files. In a cold scan this process (walk, inserts)
is the slower side: the workers wait for it, not it for them. Small jobs (a watcher event, a
few edits) never start the pool (starting one costs more than hashing them), and big files are
hashed here, in the scanning process, where progress is reported per MiB and a stop request is
seen between chunks.

The pool uses `fork` where the process has a single thread (the CLI: instant start) and
`spawn` otherwise (the daemon: forking a process with threads can copy a held lock).
"""

from __future__ import annotations

import multiprocessing
import os
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ProcessPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from daemon.scan.hash import HASHED, Hashed, Sniffer, as_hashed, hash_batch, hash_outcome
from daemon.scan.walk import DiskEntry

POOL_MIN_FILES = 256  # fewer files to hash than this: no pool
BIG_FILE_BYTES = 32 << 20  # hashed in this process (progress per MiB, stop between chunks)
BATCH_FILES = 1024
BATCH_BYTES = 16 << 20


@dataclass
class Pending:
    """Files handed to the hasher and not collected yet."""

    batches: list[tuple[list[DiskEntry], Future | None]] = field(default_factory=list)

    @property
    def entries(self) -> list[DiskEntry]:
        return [entry for batch, _ in self.batches for entry in batch]


class Hasher:
    def __init__(self, root: bytes, follow_symlinks: bool, *, sniff: Sniffer | None = None,
                 head_bytes: int = 0):
        """`sniff(head, path_text)` runs on the first `head_bytes` bytes of every hashed
        file, in the process that read them (its result, not the bytes, comes back)."""
        self.root = root
        self.follow_symlinks = follow_symlinks
        self.sniff = sniff
        self.head_bytes = head_bytes
        self._pool: ProcessPoolExecutor | None = None

    def submit(self, entries: list[DiskEntry]) -> Pending:
        """Start hashing `entries` (in the pool when it pays); collect with `results`."""
        pending = Pending()
        use_pool = self._pool is not None or len(entries) >= POOL_MIN_FILES
        batch: list[DiskEntry] = []
        batch_bytes = 0
        for entry in entries:
            if not use_pool or entry.size >= BIG_FILE_BYTES:
                pending.batches.append(([entry], None))
                continue
            batch.append(entry)
            batch_bytes += entry.size
            if len(batch) >= BATCH_FILES or batch_bytes >= BATCH_BYTES:
                pending.batches.append((batch, self._submit(batch)))
                batch, batch_bytes = [], 0
        if batch:
            pending.batches.append((batch, self._submit(batch)))
        return pending

    def _submit(self, batch: list[DiskEntry]) -> Future:
        if self._pool is None:
            method = "fork" if threading.active_count() == 1 else "spawn"
            self._pool = ProcessPoolExecutor(
                max_workers=os.cpu_count() or 1, mp_context=multiprocessing.get_context(method))
        return self._pool.submit(hash_batch, self.root, [e.rel_path for e in batch],
                                 self.follow_symlinks, self.sniff, self.head_bytes)

    def results(
        self, pending: Pending, on_bytes: Callable[[int], None]
    ) -> Iterator[tuple[DiskEntry, str, Hashed | str | None, Any]]:
        """(entry, outcome, Hashed or error text, sniffed) per file, in submission order."""
        for batch, future in pending.batches:
            if future is None:
                entry = batch[0]
                yield entry, *hash_outcome(
                    self.root + b"/" + entry.rel_path, follow_symlinks=self.follow_symlinks,
                    on_bytes=on_bytes, sniff=self.sniff, head_bytes=self.head_bytes,
                    path_text=entry.rel_path.decode("utf-8", "backslashreplace"))
                continue
            for entry, (outcome, value, sniffed) in zip(batch, future.result(), strict=True):
                yield entry, outcome, as_hashed(value) if outcome == HASHED else value, sniffed
            on_bytes(sum(entry.size for entry in batch))

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None
