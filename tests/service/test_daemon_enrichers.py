"""The daemon with the media built-ins: what it says when ffprobe or libmagic is missing."""

from __future__ import annotations

import os

from tests.conftest import REPO_ROOT
from tests.media import clip, env_without, env_without_libmagic, jpeg_bytes, needs_ffmpeg


@needs_ffmpeg
def test_without_ffprobe_and_libmagic_the_daemon_warns_once_and_no_file_waits(
        daemon_env, make_daemon, tmp_path):
    root = daemon_env.library("media", {"pic.jpg": jpeg_bytes()})
    clip(root / "clip.mp4")
    hook = env_without_libmagic(tmp_path)["PYTHONPATH"].split(os.pathsep)[0]
    daemon = make_daemon(extra_env={"PATH": env_without(tmp_path, "ffprobe")["PATH"],
                                    "PYTHONPATH": os.pathsep.join([hook, str(REPO_ROOT)])})
    daemon.start()
    try:
        def all_ready():
            files = daemon_env.files()
            return files and all(f["state"] == "ready" for f in files.values()) and files

        files = daemon.wait_for(all_ready, timeout=30, message="every file ready")
        assert set(files) == {"media/pic.jpg", "media/clip.mp4"}
        daemon.wait_ticks(2)
        warned = daemon.events("enricher.unavailable")
        assert sorted(w["enricher"] for w in warned) == ["mime", "video"]
        video = next(w for w in warned if w["enricher"] == "video")
        assert video["level"] == "warning" and "ffprobe" in video["reason"] and video["disabled"]
        shown = daemon_env.json("insight", "show", str(root / "clip.mp4"))["insights"]
        assert "video" not in {i["kind"] for i in shown}
        assert {"kind": "mime", "value": {"mime": "video/mp4", "detected_by": "magic"}} in [
            {"kind": i["kind"], "value": i["value"]} for i in shown]
    finally:
        assert daemon.stop() == 0
