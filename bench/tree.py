"""The bench's input: seeded trees of small files, and one large file, cached between runs.

A tree is `DIRS` directories of `PER_DIR` files each (`d0000/f0000.dat`), every file 64-2,000
random bytes drawn from `random.Random(seed)`, so the same seed and size give the same bytes on
every machine. One file in a hundred is a copy of an earlier file, so `dupes` has groups to find
(a tree of only random bytes has none) and moves-by-hash have candidates.

Generating 1,000,000 files takes a minute or two, so a finished tree is kept under the cache
directory, keyed by seed and size (`tree-seed1-1000x1000/`), and reused. It is built in a
`.partial` directory and renamed when complete, so an interrupted generation is never reused.
The daemon figures write files under `LIVE_DIR` inside the tree; `clear_live` removes them.
"""

from __future__ import annotations

import json
import os
import random
import shutil
from dataclasses import dataclass
from pathlib import Path

MIN_SIZE = 64
MAX_SIZE = 2000
DUPLICATE_EVERY = 100  # every 100th file copies an earlier one
LIVE_DIR = "live"  # written by the daemon figures, removed before and after them
CHUNK = 8 << 20  # small, so the bench's own RSS stays small


@dataclass(frozen=True)
class Tree:
    root: Path
    files: int
    dirs: int
    total_bytes: int


def default_cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "assetd-bench"


def ensure_tree(cache_dir: Path, seed: int, dirs: int, per_dir: int) -> tuple[Tree, bool]:
    """The tree for (seed, dirs, per_dir), generated unless cached; True when it was reused."""
    root = cache_dir / f"tree-seed{seed}-{dirs}x{per_dir}"
    manifest = root.with_name(root.name + ".json")  # beside the tree: nothing extra to index
    if manifest.is_file() and root.is_dir():
        meta = json.loads(manifest.read_text())
        clear_live(root)
        return Tree(root, meta["files"], meta["dirs"], meta["total_bytes"]), True
    partial = root.with_name(root.name + ".partial")
    shutil.rmtree(partial, ignore_errors=True)
    total_bytes = _generate(partial, seed, dirs, per_dir)
    meta = {"seed": seed, "dirs": dirs, "files": dirs * per_dir, "total_bytes": total_bytes}
    manifest.unlink(missing_ok=True)
    shutil.rmtree(root, ignore_errors=True)
    partial.rename(root)
    manifest.write_text(json.dumps(meta))
    return Tree(root, dirs * per_dir, dirs, total_bytes), False


def _generate(root: Path, seed: int, dirs: int, per_dir: int) -> int:
    rng = random.Random(seed)
    recent: list[bytes] = []
    total = 0
    for d in range(dirs):
        directory = root / f"d{d:04d}"
        directory.mkdir(parents=True)
        for f in range(per_dir):
            index = d * per_dir + f
            if index % DUPLICATE_EVERY == DUPLICATE_EVERY - 1 and recent:
                data = recent[rng.randrange(len(recent))]
            else:
                data = rng.randbytes(rng.randint(MIN_SIZE, MAX_SIZE))
                recent = [*recent[-31:], data]
            (directory / f"f{f:04d}.dat").write_bytes(data)
            total += len(data)
    return total


def clear_live(root: Path) -> None:
    shutil.rmtree(root / LIVE_DIR, ignore_errors=True)


def ensure_large_file(cache_dir: Path, seed: int, mib: int) -> Path:
    """One file of `mib` MiB, alone in its directory (a library of its own)."""
    directory = cache_dir / f"large-seed{seed}-{mib}MiB"
    path = directory / "large.bin"
    if path.is_file() and path.stat().st_size == mib << 20:
        return path
    shutil.rmtree(directory, ignore_errors=True)
    directory.mkdir(parents=True)
    rng = random.Random(seed)
    partial = directory / ".large.partial"
    remaining = mib << 20
    with open(partial, "wb") as out:
        while remaining:
            size = min(CHUNK, remaining)
            out.write(rng.randbytes(size))
            remaining -= size
    partial.rename(path)
    return path
