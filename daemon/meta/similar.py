"""Near-duplicate images: groups of perceptual hashes within `distance` bits, without all pairs.

Pigeonhole over exact bands: the 64 bits are cut into `m = distance + k` bands. Two hashes
that differ in at most `distance` bits differ in at most `distance` bands, so they agree
exactly on at least `k` bands, and so on one of the C(m, k) combinations of `k` bands. For each
combination the hashes are sorted by the bits of those bands (a radix sort where the key fits
in 16 bits); hashes with the same key are neighbours, and every pair inside a run of equal keys
is checked on all 64 bits by comparing the sorted array with itself shifted by 1, 2, ... (no
index arrays, no random access). Work grows with C(m, k) × (n + the pairs that share a key),
not n²; `_plan` picks `k` for the count and the distance (at 6 bits and 100,000 to 1,000,000
hashes: 8 bands, pairs of bands, 28 radix sorts of 16-bit keys).

The multi-index variant before it (3 bands, every key within 2 flipped bits looked up in a
table of 2^21 slots: 718 random-access passes over the hashes) took 28 s at a million random
hashes where this takes 3.5 s (bench/similar_bench.py, 2 shared cores). Pairs become groups by
union-find in numpy (hooking and pointer jumping), so a chain a~b~c is one group even when a
and c are further apart.
"""

from __future__ import annotations

from itertools import combinations
from math import comb

import numpy as np

HASH_BITS = 64
_MAX_EXACT_BANDS = 8
# Relative costs per element, measured at 1M random hashes: a stable (radix) sort of 16-bit
# keys, a sort of wider keys, and one shifted comparison of candidates.
_SORT_16_BIT, _SORT_WIDE, _CANDIDATE = 1.0, 3.0, 0.3
# Compare whole slices while at least 1/8 of the positions are still inside a run.
_DENSE_FRACTION = 8


def _widths(bands: int) -> list[int]:
    return [HASH_BITS // bands + (1 if i < HASH_BITS % bands else 0) for i in range(bands)]


def _plan(count: int, distance: int) -> tuple[int, int]:
    """(bands, exact bands) with the least estimated work for `count` hashes."""
    best: tuple[float, int, int] | None = None
    for exact in range(1, _MAX_EXACT_BANDS + 1):
        bands = distance + exact
        if bands > HASH_BITS:
            break
        key_bits = sum(sorted(_widths(bands))[:exact])  # the narrowest key: the fullest runs
        sort = _SORT_16_BIT if key_bits <= 16 else _SORT_WIDE
        per_key = count * sort + count * count / 2 ** (key_bits + 1) * _CANDIDATE
        cost = comb(bands, exact) * per_key
        if best is None or cost < best[0]:
            best = (cost, bands, exact)
    if best is None:  # distance 64: every pair is near; one key of no bits
        return HASH_BITS, 0
    return best[1], best[2]


def near_pairs(hashes: np.ndarray, distance: int) -> np.ndarray:
    """Index pairs (i < j) of `hashes` (uint64) that differ in at most `distance` bits."""
    hashes = np.asarray(hashes, dtype=np.uint64)
    if hashes.size < 2:
        return np.empty((0, 2), dtype=np.int64)
    bands, exact = _plan(hashes.size, distance)
    widths = _widths(bands)
    shifts = [sum(widths[i + 1:]) for i in range(bands)]
    key_type = np.uint16 if sum(sorted(widths)[-exact:]) <= 16 else np.uint64
    values = [((hashes >> np.uint64(shift)) & np.uint64((1 << width) - 1)).astype(key_type)
              for shift, width in zip(shifts, widths, strict=True)]
    found = []
    for chosen in combinations(range(bands), exact):
        key = np.zeros(hashes.size, dtype=key_type)
        for band in chosen:
            key = (key << key_type(widths[band])) | values[band]
        # 16-bit keys: a stable sort is a radix sort (~3x faster than a quicksort here)
        order = np.argsort(key, kind="stable" if key_type is np.uint16 else None)
        found += _pairs_in_runs(key[order], hashes[order], order, distance)
    if not found:
        return np.empty((0, 2), dtype=np.int64)
    pairs = np.concatenate(found)
    codes = np.unique(pairs[:, 0] * hashes.size + pairs[:, 1])  # found under several keys
    return np.stack([codes // hashes.size, codes % hashes.size], axis=1)


def _pairs_in_runs(keys: np.ndarray, sorted_hashes: np.ndarray, order: np.ndarray,
                   distance: int) -> list[np.ndarray]:
    """Pairs (as indexes into the unsorted hashes) inside runs of equal keys, checked.

    Offset by offset: position i is compared with i + offset while both are in one run.
    While most positions still are (long runs: many hashes per key), whole slices are
    compared (sequential reads, ~1 ns an element); once few are, only those, by index
    (a gather costs ~5-10 ns an element, but the slice would be mostly wasted).
    """
    size = keys.size
    starts = np.flatnonzero(np.concatenate(([True], keys[1:] != keys[:-1])))
    lengths = np.diff(np.append(starts, size))
    # how many positions after each one are still in its run
    remaining = np.repeat(starts + lengths, lengths) - np.arange(size, dtype=np.int64) - 1
    in_run_at = np.cumsum(np.bincount(remaining)[::-1])[::-1]  # [o]: positions with o+ after
    out = []
    active = None
    for offset in range(1, int(lengths.max())):
        if active is None and in_run_at[offset] * _DENSE_FRACTION >= size:
            close = np.bitwise_count(sorted_hashes[:-offset] ^ sorted_hashes[offset:]) \
                <= distance
            close &= keys[:-offset] == keys[offset:]  # 2-byte keys: cheaper than `remaining`
            hit = np.flatnonzero(close)
        else:
            active = np.flatnonzero(remaining >= offset) if active is None else \
                active[remaining[active] >= offset]
            close = np.bitwise_count(sorted_hashes[active] ^ sorted_hashes[active + offset]) \
                <= distance
            hit = active[close]
        if hit.size:
            left, right = order[hit], order[hit + offset]
            out.append(np.stack([np.minimum(left, right), np.maximum(left, right)], axis=1)
                       .astype(np.int64))
    return out


def groups(hashes: np.ndarray, distance: int) -> list[list[int]]:
    """Groups (2+ members) of indexes into `hashes`, connected by near pairs."""
    pairs = near_pairs(hashes, distance)
    if pairs.size == 0:
        return []
    nodes, flat = np.unique(pairs, return_inverse=True)
    left, right = flat.reshape(pairs.shape).T
    label = _components(nodes.size, left, right)
    by_label = np.argsort(label, kind="stable")  # nodes are sorted: members stay in order
    cuts = np.nonzero(np.diff(label[by_label]))[0] + 1
    return [nodes[members].tolist() for members in np.split(by_label, cuts)]


def _components(count: int, left: np.ndarray, right: np.ndarray) -> np.ndarray:
    """Each node's component label (its smallest node), by hooking and pointer jumping."""
    label = np.arange(count)
    while True:
        low = np.minimum(label[left], label[right])
        high = np.maximum(label[left], label[right])
        if np.array_equal(low, high):
            return label
        np.minimum.at(label, high, low)  # hook each root to a smaller one: no cycles
        while not np.array_equal(jumped := label[label], label):
            label = jumped
