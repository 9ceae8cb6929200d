"""`dupes --similar`'s grouping over random 64-bit perceptual hashes (no database).

    .venv/bin/python bench/similar_bench.py 100000 1000000

Random hashes are the worst case for the band index (no structure; buckets as full as chance
makes them); a few planted near-duplicates check that it still finds them.
"""

from __future__ import annotations

import sys
import time

import numpy as np

from daemon.meta.similar import groups


def bench(count: int, distance: int = 6) -> None:
    rng = np.random.default_rng(count)
    hashes = rng.integers(0, 2**64, size=count, dtype=np.uint64)
    planted = 50
    for i in range(planted):  # hashes[i + planted] is hashes[i] with 1-6 bits flipped
        bits = rng.choice(64, size=1 + i % distance, replace=False)
        hashes[i + planted] = hashes[i] ^ np.uint64(sum(1 << int(b) for b in bits))
    started = time.perf_counter()
    found = groups(hashes, distance)
    elapsed = time.perf_counter() - started
    paired = sum(1 for g in found if any(i < planted and i + planted in g for i in g))
    print(f"{count:>9,} hashes, distance {distance}: {elapsed:.2f} s, {len(found)} groups,"
          f" {paired}/{planted} planted pairs found")


if __name__ == "__main__":
    for arg in sys.argv[1:] or ["100000", "1000000"]:
        bench(int(arg))
