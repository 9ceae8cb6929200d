"""The daemon's heavy enrichers run beside its indexing, and a worker that dies is recorded once.

The slow or crashing enricher is the built-in `video` with an `ffprobe` of the test's own on
PATH: one that waits for the test's go-ahead, one that kills its parent (the worker process).
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from daemon.store import changes as feed
from tests.media import jpeg_bytes
from tests.service.conftest import query_db, write

# An MP4 `ftyp` box: libmagic and the built-in table both call it video/mp4.
MP4_HEAD = b"\x00\x00\x00\x20ftypisom\x00\x00\x02\x00isomiso2avc1mp41"
PROBED = {"format": {"duration": "2.5"},
          "streams": [{"codec_type": "video", "codec_name": "h264", "width": 4, "height": 2}]}


def fake_ffprobe(tmp_path: Path, body: str) -> dict[str, str]:
    """An environment whose `ffprobe` is `body` (sh); each run appends a line to `runs`."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    script = bin_dir / "ffprobe"
    script.write_text(f'#!/bin/sh\necho run >> "{tmp_path}/runs"\n{body}\n')
    script.chmod(0o755)
    return {"PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}"}


def runs(tmp_path: Path) -> int:
    path = tmp_path / "runs"
    return len(path.read_text().splitlines()) if path.exists() else 0


def changes(db_url: str) -> list[tuple[int, str, str, dict]]:
    """(id, kind, path, detail) of every change, read from the lean rows as the feed reads them
    (kind codes, the tag or insight kind as a label)."""
    rows = query_db(db_url, "SELECT c.id, c.kind, c.path, d.text, c.detail FROM change_log c"
                            " LEFT JOIN label d ON d.id = c.detail_label ORDER BY c.id")
    kinds = {code: kind for kind, code in feed.KIND_CODES.items()}
    return [(i, kinds[code], path,
             {feed.LABELLED_DETAIL[kinds[code]]: label} if label is not None
             else json.loads(detail or "{}"))
            for i, code, path, label, detail in rows]


def insight_kinds(db_url: str) -> set[str]:
    return {kind for (kind,) in query_db(db_url, "SELECT k.text FROM insight i JOIN label k"
                                                 " ON k.id = i.kind_label WHERE i.is_current")}


def test_a_slow_heavy_enricher_does_not_hold_up_indexing(daemon_env, make_daemon, index,
                                                         tmp_path):
    release = tmp_path / "release"
    answer = tmp_path / "answer.json"
    answer.write_text(json.dumps(PROBED))
    env = fake_ffprobe(tmp_path, f'while [ ! -e "{release}" ]; do sleep 0.05; done\n'
                                 f'cat "{answer}"')
    root = daemon_env.library("media", {"clip.mp4": MP4_HEAD + b"\x00" * 64})
    daemon_env.enrichers.append({"name": "video", "timeout": 600})
    daemon_env.write_config()
    daemon = make_daemon(extra_env=env).start()
    try:
        daemon.wait_for(lambda: runs(tmp_path) == 1, message="ffprobe running on clip.mp4")
        write(root / "new.txt", "indexed while ffprobe runs")
        write(root / "pic.jpg", jpeg_bytes(size=(64, 48)))
        daemon.wait_for(lambda: index.hashed("media/new.txt") and index.hashed("media/pic.jpg"),
                        message="new files indexed while ffprobe runs")
        daemon.wait_ticks(2)
        assert runs(tmp_path) == 1  # in flight: later ticks do not hand it over again
        assert "video" not in insight_kinds(daemon_env.db_url)  # ffprobe still waiting
        assert not release.exists()
        release.touch()
        daemon.wait_for(lambda: {"video", "image", "phash"} <= insight_kinds(daemon_env.db_url),
                        message="clip.mp4's video and pic.jpg's image and phash insights")
    finally:
        release.touch()
        assert daemon.stop() == 0
    feed = changes(daemon_env.db_url)
    created = {path: i for i, kind, path, _ in feed if kind == "created"}
    heavy = {(path, d["insight_kind"]): i for i, kind, path, d in feed if kind == "insight"}
    assert created["pic.jpg"] < heavy[("pic.jpg", "image")]
    assert created["pic.jpg"] < heavy[("pic.jpg", "phash")]
    # new.txt went into the feed while clip.mp4's ffprobe was still running.
    assert created["new.txt"] < heavy[("clip.mp4", "video")]
    shown = daemon_env.json("insight", "show", str(root / "clip.mp4"))["insights"]
    assert {"kind": "video", "value": {"duration_s": 2.5, "codec": "h264", "width": 4,
                                       "height": 2}} in [
        {"kind": i["kind"], "value": i["value"]} for i in shown]


def test_a_worker_that_dies_is_recorded_once_and_not_retried(daemon_env, make_daemon,
                                                             tmp_path):
    env = fake_ffprobe(tmp_path, "kill -9 $PPID")  # $PPID: the worker process running it
    root = daemon_env.library("media", {"clip.mp4": MP4_HEAD + b"\x00" * 64})
    process_env = {**os.environ, **env}
    daemon_env.cli("scan", process_env=process_env)
    assert runs(tmp_path) == 1
    [error] = [f["errors"] for f in daemon_env.json_lines("files", "--errors")]
    assert [e["enricher"] for e in error] == ["video"]
    assert "worker died" in error[0]["error"] and "SIGKILL" in error[0]["error"]
    daemon_env.cli("scan", process_env=process_env)
    assert runs(tmp_path) == 1  # a second scan does not run it again

    daemon = make_daemon(extra_env=env).start()
    try:
        write(root / "other.mp4", MP4_HEAD + b"\x01" * 64)  # new content: runs (and dies) once
        daemon.wait_for(lambda: runs(tmp_path) == 2, message="ffprobe on other.mp4")
        daemon.wait_for(lambda: {f["path"] for f in daemon_env.json_lines("files", "--errors")}
                        == {"clip.mp4", "other.mp4"}, message="other.mp4's error recorded")
        daemon.wait_ticks(3)
        assert runs(tmp_path) == 2
        assert daemon.events("enrich.failed", enricher="video", path="other.mp4")
    finally:
        assert daemon.stop() == 0
