"""The built-in `image` enricher (Pillow): format, size, and the EXIF fields people sort by.

A file that Pillow cannot open or decode is an insight too (`{"error": ...}`): knowing that a
photo is corrupt is the kind of thing the index is for, and the run must not stop there.
"""

from __future__ import annotations

import contextlib
from datetime import datetime
from typing import Any

from PIL import Image

_EXIF_IFD = 0x8769
_TAG_MAKE, _TAG_MODEL, _TAG_DATETIME_ORIGINAL = 0x010F, 0x0110, 0x9003
# Decoding at 1/8 scale still reads the whole JPEG stream (so truncation shows) at a fraction
# of the cost of a full decode.
_DRAFT_SCALE = 8


def describe(path: bytes) -> dict[str, Any]:
    try:
        with Image.open(path) as image:
            info: dict[str, Any] = {
                "format": image.format, "width": image.width, "height": image.height,
            }
            info.update(_exif(image))
            width, height = image.size
            image.draft(image.mode, (width // _DRAFT_SCALE, height // _DRAFT_SCALE))
            image.load()
    except Exception as exc:  # Pillow raises OSError, SyntaxError, ValueError, struct.error...
        # The insight belongs to the content, not to the path Pillow happened to be given.
        message = str(exc).replace(f" {path!r}", "")
        return {"error": f"{type(exc).__name__}: {message}"}
    return info


def _exif(image: Image.Image) -> dict[str, str]:
    fields: dict[str, str] = {}
    try:
        exif = image.getexif()
        taken = exif.get_ifd(_EXIF_IFD).get(_TAG_DATETIME_ORIGINAL)
    except Exception:  # a broken EXIF block is no reason to lose width and height
        return fields
    if isinstance(taken, str) and taken.strip():
        fields["datetime_original"] = _iso(taken.strip())
    for key, tag in (("camera_make", _TAG_MAKE), ("camera_model", _TAG_MODEL)):
        value = exif.get(tag)
        if isinstance(value, str) and value.strip("\x00 "):
            fields[key] = value.strip("\x00 ")
    return fields


def _iso(exif_time: str) -> str:
    """EXIF's "2021:06:01 12:00:00" as ISO 8601 (local time: EXIF has no zone); else as is."""
    with contextlib.suppress(ValueError):
        return datetime.strptime(exif_time, "%Y:%m:%d %H:%M:%S").isoformat()
    return exif_time
