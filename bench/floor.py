"""The floors under two of the issue's targets: what a cold scan cannot go below on this machine.

    .venv/bin/python bench/floor.py [--files 100000] [--rounds 3] [--cache-dir DIR]

Run with the Python of the build to measure (it imports `daemon`). On the bench's tree (the
same seeded tree as `run.py`), interleaved, minimum of the rounds, each figure as a ratio to
`find | xargs xxhsum -H2` in the same run:

- `sqlite insert`: only the database work of a cold `scan --no-enrich`, with no file read and
  no Python row building: the same rows (one per file of the tree) inserted by one
  `executemany` per 10,000-file part into an index that `assetd scan` created (the real schema
  and indexes), one transaction per part, plus each part's `created` changes as the scan makes
  them (one INSERT ... SELECT). The rows are built before the clock starts.
- `sqlite insert, hash index at the end`: the same without the `file_content_hash` index (the
  one with random keys), built after the last part: what inserting into that index costs.
- `sqlite insert, all secondary indexes at the end`: the same without any of the indexes the
  first scan of an empty index leaves out (`deferred_indexes.DEFERRED`: every index on `file`
  but (library_id, rel_path)), built after the last part as that scan builds them
  (store/deferred_indexes.py): the floor of that scan.
- `libmagic / 2 cores`: `mime.detect_buffer` on the files' bytes (read before the clock
  starts; at most `MAGIC_SAMPLE` files spread over the tree, scaled to all of them: the cost
  of a file does not depend on how many there are), in this process, divided by two: the CPU
  the default enricher needs at best, spread over both cores.

A cold `scan --no-enrich` also has to open and read every file and walk the tree, so it cannot
be faster than the insert floor; the default `scan` cannot be faster than the libmagic floor.
"""

from __future__ import annotations

import argparse
import os
import random
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from measure import quote, run_command, shell
from tree import default_cache_dir, ensure_tree

PART_FILES = 10_000
MAGIC_SAMPLE = 20_000
CREATED = ("INSERT INTO change_log (at_ms, host_label, library_label, kind, path, hash,"
           " detail_label, detail) SELECT ?, 1, 1, 1, path_text, content_hash, NULL, NULL FROM file"
           " WHERE id > ? AND id <= ? ORDER BY id")


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--files", type=int, default=100_000, help="files in the tree")
    parser.add_argument("--dirs", type=int, default=1000, help="directories")
    parser.add_argument("--seed", type=int, default=1, help="the tree's seed")
    parser.add_argument("--rounds", type=int, default=3, help="rounds; each figure is the min")
    parser.add_argument("--cache-dir", type=Path, default=default_cache_dir(),
                        help="where generated trees are kept")
    return parser.parse_args()


def insert_sql() -> str:
    """The cold scan's INSERT of a `file` row, its columns as the scan names them."""
    from daemon.scan.apply import _INSERT_COLUMNS

    return (f"INSERT INTO file ({', '.join(_INSERT_COLUMNS)})"
            f" VALUES ({', '.join('?' for _ in _INSERT_COLUMNS)})")


def tree_rows(root: Path) -> list[tuple]:
    """One row per file, stored as a cold scan stores it (its real stat, a random 16-byte
    hash, `enriching` with the enricher set's checksum label)."""
    from daemon.scan.apply import _INSERT_COLUMNS
    from daemon.store.models import STATE_CODES, STATE_ENRICHING

    rng = random.Random(0)
    rows = []
    for directory in sorted(os.scandir(root), key=lambda e: e.name):
        for entry in sorted(os.scandir(directory.path), key=lambda e: e.name):
            st = entry.stat(follow_symlinks=False)
            stored = {"library_id": 1, "rel_path": os.fsencode(os.path.relpath(entry.path, root)),
                      "path_text": "", "size": st.st_size, "mtime_ns": st.st_mtime_ns,
                      "inode": st.st_ino, "device": st.st_dev, "content_hash": rng.randbytes(16),
                      "is_missing": 0, "state": STATE_CODES[STATE_ENRICHING],
                      "checksum_label": 1, "first_seen": 1_700_000_000}
            rows.append(tuple(stored[column] for column in _INSERT_COLUMNS))
    return rows


def empty_index(workdir: Path, assetd: list[str]) -> Path:
    """An index with assetd's schema and one library row, made by `assetd scan`."""
    library = workdir / "empty"
    library.mkdir(exist_ok=True)
    config = workdir / "floor.toml"
    index = workdir / "empty.db"
    config.write_text(f'[daemon]\ndatabase = "sqlite:///{index}"\n'
                      f'[[library]]\nname = "floor"\npath = "{library}"\n')
    subprocess.run([*assetd, "--config", str(config), "scan", "--no-enrich"], check=True,
                   stdout=subprocess.DEVNULL)
    return index


def insert_s(template: Path, rows: list[tuple], *, at_the_end: tuple[str, ...]) -> float:
    """Insert `rows` as a cold scan's parts, the indexes `at_the_end` dropped first and built
    after the last part."""
    with tempfile.TemporaryDirectory(dir=template.parent) as scratch:
        path = Path(scratch) / "index.db"
        shutil.copy(template, path)
        db = sqlite3.connect(path, isolation_level=None)
        db.execute("PRAGMA journal_mode = WAL")
        db.execute("PRAGMA synchronous = NORMAL")
        creates = [db.execute("SELECT sql FROM sqlite_master WHERE name = ?", (name,)).fetchone()[0]
                   for name in at_the_end]
        for name in at_the_end:
            db.execute(f"DROP INDEX {name}")
        insert = insert_sql()
        started = time.perf_counter()
        for start in range(0, len(rows), PART_FILES):
            db.execute("BEGIN IMMEDIATE")
            db.executemany(insert, rows[start:start + PART_FILES])
            db.execute(CREATED, (int(time.time() * 1000), start, start + PART_FILES))
            db.execute("COMMIT")
        for create in creates:
            db.execute(create)
        elapsed_s = time.perf_counter() - started
        db.close()
        return elapsed_s


def libmagic_s(heads: list[bytes], files: int) -> float:
    from daemon.meta import mime

    started = time.perf_counter()
    for head in heads:
        mime.detect_buffer(head, "d/f.dat")
    return (time.perf_counter() - started) * files / len(heads) / 2


def main() -> int:
    args = parse_args()
    if shutil.which("xxhsum") is None:
        print("floor.py: needs xxhsum (Debian/Ubuntu: apt-get install xxhash)", file=sys.stderr)
        return 2
    tree, _ = ensure_tree(args.cache_dir, args.seed, args.dirs, args.files // args.dirs)
    assetd = [str(Path(sys.executable).parent / "assetd")]
    xxhsum = shell(f"find {quote(tree.root)} -type f -print0 | xargs -0 xxhsum -H2 > /dev/null")
    rows = tree_rows(tree.root)
    step = max(1, len(rows) // MAGIC_SAMPLE)
    heads = [Path(tree.root, os.fsdecode(row[1])).read_bytes()[:65536] for row in rows[::step]]
    from daemon.store.deferred_indexes import DEFERRED

    at_the_end = {"sqlite insert": (), "sqlite insert, hash index at the end": (
        "file_content_hash",), "sqlite insert, all secondary indexes at the end": DEFERRED}
    figures: dict[str, list[float]] = {"xxhsum": [], **{name: [] for name in at_the_end},
                                       "libmagic / 2 cores": []}
    with tempfile.TemporaryDirectory() as workdir:
        template = empty_index(Path(workdir), assetd)
        run_command(xxhsum)  # warm the page cache
        for round_number in range(1, args.rounds + 1):
            print(f"round {round_number}/{args.rounds}", file=sys.stderr)
            figures["xxhsum"].append(run_command(xxhsum).wall_s)
            for name, indexes in at_the_end.items():
                figures[name].append(insert_s(template, rows, at_the_end=indexes))
            figures["libmagic / 2 cores"].append(libmagic_s(heads, len(rows)))
    baseline = min(figures["xxhsum"])
    print(f"| floor ({tree.files:,} files) | seconds | / xxhsum |")
    print("| --- | --- | --- |")
    for name, samples in figures.items():
        print(f"| {name} | {min(samples):.3f} | {min(samples) / baseline:.2f}x |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
