"""Enrichers and the lifecycle end to end: once per hash, config changes, failures."""

from __future__ import annotations

import io
import os
import shutil
import sys

from PIL import Image

# Appends the path it was given to a log (so a test can count runs), then answers or fails.
COUNTER = (
    "import json, sys; open(sys.argv[1], 'a').write(sys.argv[3] + '\\n');"
    "sys.exit('no can do') if sys.argv[2] == 'fail' else print(json.dumps({'ok': True}))"
)


def counting_enricher(env, name: str, match: list[str], *, fail: bool = False,
                      timeout: int = 10) -> list[str]:
    log = env.tmp_path / f"{name}.log"
    env.enrichers = [e for e in env.enrichers if e["name"] != name] + [{
        "name": name, "match": match, "timeout": timeout,
        "command": [sys.executable, "-c", COUNTER, str(log), "fail" if fail else "ok", "{path}"],
    }]
    env.write_config()
    return log


def runs(log) -> list[str]:
    return [os.path.basename(p) for p in log.read_text().splitlines()] if log.exists() else []


def states(env) -> dict[str, str]:
    return {key: row["state"] for key, row in env.files().items()}


def insight(env, path, kind: str):
    shown = env.json("insight", "show", str(path))["insights"]
    return next(i for i in shown if i["kind"] == kind)


def png_bytes() -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (3, 2), "green").save(out, "PNG")
    return out.getvalue()


def test_enrichers_run_once_per_hash_and_the_lifecycle_ends_ready(env):
    log = counting_enricher(env, "count", ["*.dat"])
    photos = env.library("photos", {"a.dat": "A", "b.dat": "B", "dup.dat": "A", "pic.png":
                                    png_bytes()})
    backup = env.library("backup")
    env.cli("scan")
    assert sorted(runs(log)) in (["a.dat", "b.dat"], ["b.dat", "dup.dat"])
    assert set(states(env).values()) == {"ready"}  # a scan settles what it enriched
    assert insight(env, photos / "pic.png", "image")["value"] == {
        "format": "PNG", "width": 3, "height": 2}
    assert insight(env, photos / "a.dat", "count")["source"] == "count"

    os.makedirs(photos / "moved")
    os.rename(photos / "a.dat", photos / "moved" / "a2.dat")
    shutil.copy(photos / "b.dat", backup / "b-copy.dat")
    env.cli("scan")
    assert len(runs(log)) == 2
    assert set(states(env).values()) == {"ready"}  # moved and copied content: nothing to run
    assert env.json("reconcile")["passes"]["lifecycle"] == 0


def test_enricher_config_change_sends_ready_files_back_to_enriching(env):
    log = counting_enricher(env, "count", ["*.dat"])
    env.library("photos", {"a.dat": "A", "notes.txt": "n"})
    env.cli("scan")
    env.cli("reconcile")
    assert set(states(env).values()) == {"ready"}

    counting_enricher(env, "count", ["*.dat"], timeout=20)
    out = env.json("reconcile")
    # notes.txt: ready → enriching → ready (nothing of it changed); a.dat waits for a re-run.
    assert out["passes"]["lifecycle"] == 3
    assert states(env) == {"photos/a.dat": "enriching", "photos/notes.txt": "ready"}
    env.cli("scan")
    assert runs(log) == ["a.dat", "a.dat"]
    env.cli("reconcile")
    assert set(states(env).values()) == {"ready"}
    assert env.json("reconcile")["changes"] == 0


def test_failures_are_error_insights_retried_only_when_the_config_changes(env):
    log = counting_enricher(env, "flaky", ["*.dat"], fail=True)
    root = env.library("photos", {"x.dat": "X", "bad.jpg": b"\xff\xd8\xff garbage"})
    env.json("scan")  # exit 0: a failing enricher is not a failed file
    assert insight(env, root / "x.dat", "flaky")["value"] == {"error": "exit status 1: no can do"}
    assert "error" in insight(env, root / "bad.jpg", "image")["value"]
    assert insight(env, root / "bad.jpg", "mime")["value"]["mime"] == "image/jpeg"

    env.cli("scan")
    assert runs(log) == ["x.dat"]
    env.cli("reconcile")
    assert set(states(env).values()) == {"ready"}  # an error is a result too

    counting_enricher(env, "flaky", ["*.dat"], fail=False, timeout=11)
    env.cli("scan")
    assert runs(log) == ["x.dat", "x.dat"]
    assert insight(env, root / "x.dat", "flaky")["value"] == {"ok": True}


def test_enrichers_are_summarized_per_run_and_failures_are_capped(sqlite_env):
    import json

    counting_enricher(sqlite_env, "flaky", ["*.dat"], fail=True)
    sqlite_env.library("photos", {f"{i}.dat": f"content {i}" for i in range(5)})
    proc = sqlite_env.cli("--log-level", "info", "--log-format", "json", "scan", "--json")
    events = [json.loads(line) for line in proc.stderr.splitlines()]
    failed = [e for e in events if e["event"] == "enrich.failed"]
    assert len(failed) == 3 and all(e["level"] == "warning" for e in failed)
    assert {"enricher", "library", "path", "error"} <= set(failed[0])
    assert not any(e["event"] == "enrich.ran" for e in events)  # per file: debug only
    [summary] = [e for e in events if e["event"] == "enrich.finished"]
    assert summary["level"] == "info" and summary["library"] == "photos"
    assert summary["ran"]["flaky"] == 5 and summary["failed"] == {"flaky": 5}
    assert summary["failures_not_logged"] == {"flaky": 2}
