"""Near-duplicate images: groups of perceptual hashes within `distance` bits, without all pairs.

Multi-index hashing: the 64 bits are cut into `m` = 3 bands. Two hashes that
differ in at most `d` bits differ in at most `d // m` bits in some band (pigeonhole). So for
every hash and every band, the candidates are the hashes whose band equals one of the band
values within `d // m` flipped bits (232 values for a 21-bit band and 2 flips), looked up in a
counting-sort table (a direct-address index of 2^21 slots, no search); each candidate pair is
then checked on all 64 bits. Work grows with n × variants plus the candidates, not n²: see
docs/metadata.md for the figures at 100,000 and 1,000,000 hashes. Pairs become groups by
union-find (a chain a~b~c is one group even when a and c are further apart).
"""

from __future__ import annotations

from itertools import combinations

import numpy as np

HASH_BITS = 64


BAND_COUNT = 3  # 21-22-bit bands: a direct-address table per band stays at 4 Mi slots


def _bands() -> list[tuple[int, int]]:
    """(shift, width) of each band."""
    count = BAND_COUNT
    widths = [HASH_BITS // count + (1 if i < HASH_BITS % count else 0) for i in range(count)]
    shifts = [sum(widths[i + 1:]) for i in range(count)]
    return list(zip(shifts, widths, strict=True))


def _flip_masks(width: int, flips: int) -> np.ndarray:
    masks = [0]
    for k in range(1, flips + 1):
        masks += [sum(1 << bit for bit in bits) for bits in combinations(range(width), k)]
    return np.array(masks, dtype=np.int64)


def near_pairs(hashes: np.ndarray, distance: int) -> np.ndarray:
    """Index pairs (i < j) of `hashes` (uint64) that differ in at most `distance` bits."""
    hashes = np.asarray(hashes, dtype=np.uint64)
    bands = _bands()
    flips = distance // len(bands)
    found = []
    for shift, width in bands:
        keys = ((hashes >> np.uint64(shift)) & np.uint64((1 << width) - 1)).astype(np.int64)
        order = np.argsort(keys, kind="stable")
        counts = np.bincount(keys, minlength=1 << width)
        starts = np.concatenate(([0], np.cumsum(counts)[:-1]))
        sorted_keys = keys[order]  # walking keys in order keeps the table look-ups local
        sides: dict[int, tuple[np.ndarray, np.ndarray]] = {}
        for mask in _flip_masks(width, flips).tolist():
            # key ^ mask finds j from i and i from j: look only from the side where the
            # mask's top bit is clear, and every pair is found once.
            top = 1 << (mask.bit_length() - 1) if mask else 0
            if top not in sides:
                here = (np.nonzero((sorted_keys & top) == 0)[0] if top
                        else np.arange(sorted_keys.size))
                sides[top] = (here, sorted_keys[here])
            found += _pairs_for_mask(hashes, distance, order, counts, starts, *sides[top], mask)
    if not found:
        return np.empty((0, 2), dtype=np.int64)
    return np.unique(np.concatenate(found), axis=0)


def _pairs_for_mask(hashes, distance, order, counts, starts, from_here, their_keys,
                    mask: int) -> list:
    """Pairs whose band keys differ by exactly `mask`, checked on all 64 bits."""
    wanted = their_keys ^ mask
    n_found = counts[wanted]
    hit = np.nonzero(n_found)[0]
    if hit.size == 0:
        return []
    holders, per, first = order[from_here[hit]], n_found[hit], starts[wanted[hit]]
    out = []
    single = per == 1  # most buckets hold one hash: no expansion needed
    out.append((holders[single], order[first[single]]))
    many = ~single
    if many.any():
        per_many = per[many]
        offsets = np.arange(per_many.sum()) - np.repeat(np.cumsum(per_many) - per_many,
                                                        per_many)
        out.append((np.repeat(holders[many], per_many),
                    order[np.repeat(first[many], per_many) + offsets]))
    pairs = []
    for left, right in out:
        close = (left != right) & (np.bitwise_count(hashes[left] ^ hashes[right]) <= distance)
        left, right = left[close], right[close]
        pairs.append(np.stack([np.minimum(left, right), np.maximum(left, right)], axis=1))
    return pairs


def groups(hashes: np.ndarray, distance: int) -> list[list[int]]:
    """Groups (2+ members) of indexes into `hashes`, connected by near pairs."""
    parent = list(range(len(hashes)))

    def root(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    for i, j in near_pairs(hashes, distance).tolist():
        parent[root(i)] = root(j)
    members: dict[int, list[int]] = {}
    for i in range(len(hashes)):
        members.setdefault(root(i), []).append(i)
    return [sorted(group) for group in members.values() if len(group) > 1]
