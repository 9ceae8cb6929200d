"""The built-in `video` enricher: `ffprobe` (from ffmpeg) when it is on PATH.

Value: `duration_s` (the container's, else the video stream's), and the first video stream's
`codec`, `width`, `height`. It runs ffprobe as an external command does (own process group,
killed at the enricher's `timeout`, default 30 s). Without ffprobe the enricher is unavailable:
`enrichers.unavailable_reason` leaves it out of the active set, so no file waits for it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from daemon.config import EnricherConfig
from daemon.meta.external import PATH_PLACEHOLDER, run_command

FFPROBE = "ffprobe"
_ARGV = (FFPROBE, "-v", "error", "-print_format", "json", "-show_format", "-show_streams",
         PATH_PLACEHOLDER)


def describe(path: bytes, timeout_s: float, stop: Callable[[], bool] | None = None
             ) -> dict[str, Any]:
    probe = EnricherConfig(name="video", match=("*",), command=_ARGV, timeout_s=timeout_s)
    probed = run_command(probe, path, stop)
    if not isinstance(probed, dict) or "error" in probed:
        error = probed.get("error") if isinstance(probed, dict) else "unexpected output"
        return {"error": f"ffprobe: {error}".replace(path.decode(errors="replace"), "")}
    return video_value(probed)


def video_value(probed: dict[str, Any]) -> dict[str, Any]:
    streams = [s for s in probed.get("streams") or () if isinstance(s, dict)]
    video = next((s for s in streams if s.get("codec_type") == "video"
                  and not (s.get("disposition") or {}).get("attached_pic")), None)
    if video is None:
        return {"error": "no video stream"}
    duration = _number((probed.get("format") or {}).get("duration"))
    if duration is None:
        duration = _number(video.get("duration"))
    return {
        "duration_s": None if duration is None else round(duration, 3),
        "codec": video.get("codec_name"),
        "width": video.get("width"),
        "height": video.get("height"),
    }


def _number(text: Any) -> float | None:
    try:
        return float(text)
    except (TypeError, ValueError):
        return None
