"""SIGKILL at random points of a burst, a full scan, a reconcile and an enricher batch: after a
restart the index is exact.

Each seed drives the same world through kill points chosen by the seed (what is changed on
disk before each start, and how long the daemon lives before SIGKILL: during its startup
scan, a watcher batch, a tick's backfill, enrichers and reconcile passes). Then one last
daemon runs to completion and the index must be exactly the disk: every present file hashed
right, every vanished file missing (never deleted), every tag and user insight kept, and
SQLite's integrity check ok.
"""

from __future__ import annotations

import contextlib
import random
import sqlite3
import time
from pathlib import Path

import pytest
import xxhash

from tests.conftest import Env, new_pg_schema_url
from tests.service.conftest import DAEMON_SETTINGS, Index, write

FILES = 150


def xxh128(path: Path) -> str:
    return "xxh128:" + xxhash.xxh3_128_hexdigest(path.read_bytes())


def on_disk(root: Path) -> dict[str, str]:
    return {f"photos/{p.relative_to(root).as_posix()}": xxh128(p)
            for p in root.rglob("*") if p.is_file()}


def mutate(root: Path, rng: random.Random, step: int) -> None:
    """A burst: new files, edits, moves and deletes, as a user's day would have them."""
    files = sorted(p for p in root.rglob("*") if p.is_file())
    for i in range(rng.randint(20, 80)):
        write(root / f"burst{step}" / f"d{i % 4}" / f"n{i}.dat", f"{step}-{i}-{rng.random()}")
    for path in rng.sample(files, min(10, len(files))):
        choice = rng.random()
        if choice < 0.4:
            path.write_bytes(path.read_bytes() + b"+")
        elif choice < 0.7:
            path.rename(path.with_name("moved-" + path.name))
        else:
            path.unlink()


def index_matches(index: Index, expected: dict[str, str]) -> bool:
    rows = index.rows()
    present = {k: r["hash"] for k, r in rows.items() if not r["missing"]}
    return present == expected and all(
        r["missing"] for k, r in rows.items() if k not in expected)


def run_kill_points(env: Env, make_daemon, seed: int, kill_points: int) -> None:
    rng = random.Random(seed)
    root = env.library("photos", {f"base/f{i:03d}.dat": f"base {i} {seed}" for i in range(FILES)})
    env.cli("scan")
    tagged = root / "base" / "f000.dat"
    env.cli("tag", "add", str(tagged), "keep")
    env.cli("insight", "set", str(tagged), "note", '{"by": "user"}')
    tagged_hash = xxh128(tagged)

    for step in range(kill_points):
        mutate(root, rng, step)
        daemon = make_daemon(env=env).start(wait_ready=False)
        time.sleep(rng.uniform(0.05, 1.5))
        daemon.kill()

    final = make_daemon(env=env).start()
    index = Index(env.db_url)
    expected = on_disk(root)
    final.wait_for(lambda: index_matches(index, expected), timeout=90,
                   message="the index to match the disk")
    assert final.stop() == 0

    rows = env.files()
    carriers = [k for k, r in rows.items() if r["hash"] == tagged_hash]
    assert carriers and all("keep" in rows[k]["tags"] for k in carriers)
    if tagged.exists():
        shown = env.json("insight", "show", str(tagged))["insights"]
        assert {"kind": "note", "value": {"by": "user"}} in [
            {"kind": i["kind"], "value": i["value"]} for i in shown]
    if env.db_url.startswith("sqlite:"):
        with contextlib.closing(sqlite3.connect(env.db_url[len("sqlite:///"):])) as conn:
            assert conn.execute("PRAGMA integrity_check").fetchone() == ("ok",)


@pytest.mark.parametrize("seed", [1, 2])
def test_kill_points_on_sqlite(sqlite_env, make_daemon, seed):
    sqlite_env.daemon.update(DAEMON_SETTINGS)
    run_kill_points(sqlite_env, make_daemon, seed, kill_points=10)


def test_kill_points_on_postgresql(tmp_path, pg_database, make_daemon):
    env = Env(tmp_path, new_pg_schema_url(pg_database))
    env.daemon.update(DAEMON_SETTINGS)
    run_kill_points(env, make_daemon, seed=3, kill_points=5)
