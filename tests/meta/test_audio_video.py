"""`audio` (mutagen) and `video` (ffprobe) on media made by ffmpeg; video without ffprobe."""

from __future__ import annotations

import os

import pytest

from daemon.meta import audio, video
from tests.conftest import REPO_ROOT
from tests.media import clip, env_without, needs_ffmpeg, tone

pytestmark = needs_ffmpeg
TAGS = ("-metadata", "title=Tone", "-metadata", "artist=The Testers", "-metadata",
        "album=Made in Tests")


@pytest.mark.parametrize(("name", "extra", "codec"), [
    ("tone.mp3", (), "mp3"),
    ("tone.flac", (), "flac"),
    ("tone.ogg", (), "vorbis"),
    ("tone.m4a", ("-c:a", "aac"), "mp4a.40.2"),
])
def test_audio_duration_codec_rate_channels_and_tags(tmp_path, name, extra, codec):
    path = tone(tmp_path / name, *extra, *TAGS, "-ar", "22050", "-ac", "2", seconds=2)
    value = audio.describe(bytes(path))
    assert value["duration_s"] == pytest.approx(2.0, abs=0.1)
    assert (value["codec"], value["sample_rate"], value["channels"]) == (codec, 22050, 2)
    assert (value["title"], value["artist"], value["album"]) == (
        "Tone", "The Testers", "Made in Tests")


def test_audio_without_tags_and_a_wav_without_extension(tmp_path):
    wav = tone(tmp_path / "t.wav", "-ar", "8000", "-ac", "1")
    renamed = tmp_path / "recording"
    os.rename(wav, renamed)
    assert audio.describe(bytes(renamed)) == {
        "duration_s": 1.0, "codec": "pcm", "sample_rate": 8000, "channels": 1}


def test_what_is_not_audio_is_an_error(tmp_path):
    (tmp_path / "x.mp3").write_bytes(b"\x00" * 100)
    assert set(audio.describe(bytes(tmp_path / "x.mp3"))) == {"error"}


def test_video_duration_codec_and_size(tmp_path):
    for name in ("clip.mp4", "clip.mkv"):
        path = clip(tmp_path / name, size="176x144", seconds=2)
        assert video.describe(bytes(path), 30) == {
            "duration_s": pytest.approx(2.0, abs=0.1), "codec": "h264",
            "width": 176, "height": 144}


def test_video_of_broken_bytes_is_an_error(tmp_path):
    (tmp_path / "bad.mp4").write_bytes(b"\x00\x00\x00\x18ftypisom" + b"\x00" * 50)
    value = video.describe(bytes(tmp_path / "bad.mp4"), 30)
    assert set(value) == {"error"} and str(tmp_path) not in value["error"]


def test_without_ffprobe_on_path_video_is_unavailable_and_files_do_not_wait(env, tmp_path):
    root = env.library("media")
    clip(root / "clip.mp4")
    tone(root / "song.mp3", *TAGS)
    bare = env_without(tmp_path, "ffprobe")
    bare["PYTHONPATH"] = str(REPO_ROOT)
    checked = env.cli("config", "check", process_env=bare)
    line = next(li for li in checked.stdout.splitlines() if li.startswith("enricher video"))
    assert "UNAVAILABLE" in line and "ffprobe" in line
    env.cli("scan", process_env=bare)
    env.cli("reconcile", process_env=bare)
    assert {f["path"]: f["state"] for f in env.json_lines("files")} == {
        "clip.mp4": "ready", "song.mp3": "ready"}
    kinds = {i["kind"] for i in env.json("insight", "show", str(root / "clip.mp4"))["insights"]}
    assert kinds == {"mime"}
    song = env.json("insight", "show", str(root / "song.mp3"))["insights"]
    assert next(i for i in song if i["kind"] == "audio")["value"]["title"] == "Tone"
    # With ffprobe back on PATH, the set changed: the video runs and the file is ready again.
    env.cli("scan")
    env.cli("reconcile")
    shown = env.json("insight", "show", str(root / "clip.mp4"))["insights"]
    assert next(i for i in shown if i["kind"] == "video")["value"]["codec"] == "h264"
    assert {f["state"] for f in env.json_lines("files")} == {"ready"}
