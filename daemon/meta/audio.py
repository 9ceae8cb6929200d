"""The built-in `audio` enricher (mutagen): duration, codec, sample rate, channels, common tags.

mutagen identifies the container from the bytes (MP3, FLAC, Ogg Vorbis/Opus, MP4/M4A, WAV,
AIFF, ASF/WMA, APE, WavPack ...). The codec is named from mutagen's stream info (`codec` where
the format has several, e.g. MP4's `mp4a.40.2`; else the container's own codec, e.g. `mp3`,
`flac`, `vorbis`). Tags are read through mutagen's "easy" mapping, so ID3 `TIT2`, Vorbis
`TITLE` and MP4 `©nam` all become `title`; the first value of each is kept.
"""

from __future__ import annotations

from typing import Any

import mutagen

_TAGS = ("title", "artist", "album")
# mutagen's class name → the codec it always carries (formats with several set `codec`).
_CODEC_BY_TYPE = {
    "MP3": "mp3", "EasyMP3": "mp3", "FLAC": "flac", "OggVorbis": "vorbis", "OggOpus": "opus",
    "OggFLAC": "flac", "OggSpeex": "speex", "OggTheora": "theora", "WAVE": "pcm",
    "AIFF": "pcm", "MonkeysAudio": "ape", "WavPack": "wavpack", "Musepack": "musepack",
    "TrueAudio": "tta", "OptimFROG": "optimfrog", "DSF": "dsd", "DSDIFF": "dsd", "AAC": "aac",
    "AC3": "ac3", "SMF": "midi",
}


def describe(path: bytes) -> dict[str, Any]:
    try:
        audio = mutagen.File(path, easy=True)
    except (FileNotFoundError, PermissionError, IsADirectoryError):
        raise  # the file, not its content: the runner retries later
    except Exception as exc:  # mutagen.MutagenError and the odd struct/Index error
        return {"error": f"{type(exc).__name__}: {exc}".replace(f" {path!r}", "")}
    if audio is None or audio.info is None:
        return {"error": "not an audio format mutagen reads"}
    return _value(audio)


def _value(audio: Any) -> dict[str, Any]:
    info = audio.info
    value: dict[str, Any] = {
        "duration_s": round(float(getattr(info, "length", 0) or 0), 3),
        "codec": _codec(audio),
        "sample_rate": getattr(info, "sample_rate", None),
        "channels": getattr(info, "channels", None),
    }
    tags = audio.tags or {}
    for key in _TAGS:
        try:
            found = tags.get(key)
        except Exception:  # an easy-tag mapping that chokes on a malformed frame
            found = None
        if isinstance(found, list) and found:
            found = found[0]
        if isinstance(found, str) and found.strip():
            value[key] = found.strip()
    return value


def _codec(audio: Any) -> str | None:
    codec = getattr(audio.info, "codec", None)
    if isinstance(codec, str) and codec:
        return codec
    name = type(audio).__name__
    return _CODEC_BY_TYPE.get(name, name.lower())
