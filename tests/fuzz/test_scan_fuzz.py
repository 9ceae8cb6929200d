"""Random edits between two scans, checked against the disk: whatever was moved, swapped,
copied, edited, deleted or added, the index afterwards has one present row per file with that
file's hash, no path twice, and a third scan finds nothing to do.

Seeded, so a failure replays; the part size varies (a part of one file splits every move from
its source). It found `mv a c` followed by a new `a` failing every scan on the unique path
(tests/cli/test_scan_cli.py has that case on its own).
"""

from __future__ import annotations

import os
import random
import shutil

import xxhash

from daemon.config import load_config
from daemon.scan import plan, scanner
from daemon.scan.scanner import ScanOptions, scan_library
from daemon.store import queries
from daemon.store.hashes import from_db

SCENARIOS = 25
OPS = ("mv", "mv", "rm", "edit", "copy", "new", "swap", "mvdir")


def make_tree(rng: random.Random, root: str) -> None:
    for i in range(rng.randint(20, 120)):
        directory = f"d{rng.randint(0, 6)}" + (f"/s{rng.randint(0, 2)}" if rng.random() < 0.3
                                               else "")
        # Many files share their bytes: moves by content have several candidates.
        data = (b"x" * rng.randint(0, 5) + str(rng.randint(0, 9)).encode()
                if rng.random() < 0.4 else rng.randbytes(rng.randint(1, 200)))
        os.makedirs(os.path.join(root, directory), exist_ok=True)
        with open(os.path.join(root, directory, f"f{i:03d}.dat"), "wb") as out:
            out.write(data)


def files_under(root: str) -> list[str]:
    return sorted(os.path.relpath(os.path.join(top, name), root)
                  for top, _, names in os.walk(root) for name in names)


def mutate(rng: random.Random, root: str) -> None:
    for step in range(rng.randint(1, 40)):
        present = files_under(root)
        if not present:
            return
        a, b = rng.choice(present), rng.choice(present)
        path_a, path_b = os.path.join(root, a), os.path.join(root, b)
        match rng.choice(OPS):
            case "mv":
                target = os.path.join(root, f"m{step % 4}", f"mv{step}.dat")
                os.makedirs(os.path.dirname(target), exist_ok=True)
                os.rename(path_a, target)
            case "rm":
                os.unlink(path_a)
            case "edit":
                with open(path_a, "ab") as out:
                    out.write(b"e")
            case "copy":
                shutil.copyfile(path_a, os.path.join(root, f"c{step}.dat"))
            case "new":
                with open(os.path.join(root, f"n{step}.dat"), "wb") as out:
                    out.write(str(rng.randint(0, 9)).encode())
            case "swap" if a != b:
                os.rename(path_a, path_a + ".swap")
                os.rename(path_b, path_a)
                os.rename(path_a + ".swap", path_b)
            case "mvdir":
                directory = os.path.dirname(path_a)
                if directory != root:
                    os.rename(directory, os.path.join(root, f"z{step}"))


def assert_index_is_the_disk(store, library: str, root: str) -> None:
    row = queries.get_library(library)
    rows = store.query("SELECT rel_path, content_hash, is_missing FROM file"
                       " WHERE library_id = ?", [row.id])
    assert len({bytes(r[0]) for r in rows}) == len(rows), "a path twice"
    present = {bytes(path).decode(): from_db(digest) for path, digest, missing in rows
               if not missing}
    on_disk = files_under(root)
    assert sorted(present) == on_disk
    for path in on_disk:
        with open(os.path.join(root, path), "rb") as source:
            assert present[path] == "xxh128:" + xxhash.xxh3_128_hexdigest(source.read()), path


def test_random_edits_leave_the_index_equal_to_the_disk(env, store, monkeypatch):
    for seed in range(SCENARIOS):
        rng = random.Random(seed)
        monkeypatch.setattr(scanner, "PART_FILES", rng.choice([1, 2, 3, 7, 10_000]))
        # Full rows read from 1, 2 or 5 at a time where keys differ (their own draw: the
        # scenarios stay those of the seeds).
        monkeypatch.setattr(plan, "LOAD_ROWS", random.Random(-seed).choice([1, 2, 5, 100]))
        name = f"l{seed}"
        root = str(env.library(name))
        make_tree(rng, root)
        config = load_config(str(env.config_path))
        library = config.library(name)
        scan_library(store, config, library)
        mutate(rng, root)
        result = scan_library(store, config, library,
                              options=ScanOptions(allow_mass_missing=True))
        assert result.status == "ok", (seed, result.errors)
        assert_index_is_the_disk(store, name, root)
        again = scan_library(store, config, library).stats
        assert again["unchanged"] == again["discovered"] and again["missing"] == 0, (seed, again)
