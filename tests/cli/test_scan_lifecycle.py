"""A one-shot scan leaves the files it enriched `ready`, and touches nothing outside its scope."""

from __future__ import annotations

from tests.conftest import Env


def states(env: Env) -> dict[str, str]:
    return {key: row["state"] for key, row in env.files().items()}


def test_a_scan_leaves_its_files_ready(env):
    env.library("photos", {"a.txt": "a", "sub/b.bin": b"\x00\x01binary"})
    env.cli("scan")
    assert states(env) == {"photos/a.txt": "ready", "photos/sub/b.bin": "ready"}
    assert env.json("reconcile")["passes"]["lifecycle"] == 0  # nothing left for the tick


def test_without_enrichers_unseen_content_is_not_ready(env):
    env.library("photos", {"a.txt": "a"})
    env.cli("scan", "--no-enrich")
    assert states(env) == {"photos/a.txt": "enriching"}  # hashed, its enrichers pending
    env.cli("scan")
    assert states(env) == {"photos/a.txt": "ready"}


def test_a_dry_run_and_a_partial_scan_settle_nothing_else(env):
    root = env.library("photos", {"in/a.txt": "a", "out/b.txt": "b"})
    env.cli("scan", "--no-enrich")
    env.cli("scan", "--dry-run")
    assert set(states(env).values()) == {"enriching"}
    env.cli("scan", "--path", str(root / "in"))
    assert states(env) == {"photos/in/a.txt": "ready", "photos/out/b.txt": "enriching"}
