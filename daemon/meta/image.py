"""The built-in `image` enricher (Pillow): format, size, and the EXIF fields people sort by.

Any format Pillow opens, whatever the file is called: the file is identified by Pillow's
plugins from its bytes (`pillow_open`). The size comes from the header; then the pixels are
decoded (JPEGs at 1/8 scale, which still reads the whole stream) so a truncated or corrupt file
is noticed: it keeps `width`/`height` and gets `"error"`. A file whose pixel count, after that
reduction, exceeds Pillow's `Image.MAX_IMAGE_PIXELS` (~89 million) is never decoded (a
decompression bomb: a few KiB of PNG can announce gigabytes of pixels); it keeps its size and
gets an `"error"` that says so. A file Pillow cannot identify is `{"error": ...}`, not a crash.
"""

from __future__ import annotations

import contextlib
import math
import warnings
from datetime import datetime
from typing import Any

from PIL import Image, ImageFile

from daemon.meta import pillow_open

_EXIF_IFD, _GPS_IFD = 0x8769, 0x8825
_TAG_MAKE, _TAG_MODEL, _TAG_DATETIME_ORIGINAL = 0x010F, 0x0110, 0x9003
_GPS_LATITUDE_REF, _GPS_LATITUDE, _GPS_LONGITUDE_REF, _GPS_LONGITUDE = 1, 2, 3, 4
_DRAFT_SCALE = 8
_GPS_DECIMALS = 7  # ~1 cm: more digits than any GPS receiver measures


def describe(path: bytes) -> dict[str, Any]:
    try:
        with open(path, "rb") as f:
            image = pillow_open.identify(f)
            if image is None:
                return {"error": "UnidentifiedImageError: cannot identify image file"}
            with image:
                return _describe_open(image)
    except OSError as exc:
        if isinstance(exc, FileNotFoundError | PermissionError | IsADirectoryError):
            raise  # the file, not its content: the runner retries later
        return {"error": message(exc, path)}


def header_fields(image: ImageFile.ImageFile) -> dict[str, Any]:
    """Format, size and EXIF: what the header says, before any decode."""
    info: dict[str, Any] = {"format": image.format, "width": image.width, "height": image.height}
    info.update(exif_fields(image))
    return info


def _describe_open(image: ImageFile.ImageFile) -> dict[str, Any]:
    info = header_fields(image)
    error = decode_check(image)
    if error is not None:
        info["error"] = error
    return info


def decode_check(image: ImageFile.ImageFile) -> str | None:
    """Decode the pixels (reduced where the format allows); the error text, or None."""
    try:
        width, height = image.size
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # Pillow's DecompressionBombWarning: checked below
            image.draft(image.mode, (width // _DRAFT_SCALE, height // _DRAFT_SCALE))
        pixels = image.size[0] * image.size[1]
        limit = Image.MAX_IMAGE_PIXELS
        if limit is not None and pixels > limit:
            return (f"DecompressionBombError: {pixels} pixels to decode exceeds the limit of"
                    f" {limit}; not decoded")
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            image.load()
    except Exception as exc:  # Pillow raises OSError, SyntaxError, ValueError, struct.error...
        return f"{type(exc).__name__}: {exc}"
    return None


def message(exc: BaseException, path: bytes) -> str:
    # The insight belongs to the content, not to the path Pillow happened to be given.
    return f"{type(exc).__name__}: {str(exc).replace(f' {path!r}', '')}"


def exif_fields(image: Image.Image) -> dict[str, Any]:
    fields: dict[str, Any] = {}
    try:
        exif = image.getexif()
        taken = exif.get_ifd(_EXIF_IFD).get(_TAG_DATETIME_ORIGINAL)
        gps = exif.get_ifd(_GPS_IFD)
    except Exception:  # a broken EXIF block is no reason to lose width and height
        return fields
    if isinstance(taken, str) and taken.strip():
        fields["datetime_original"] = _iso(taken.strip())
    for key, tag in (("camera_make", _TAG_MAKE), ("camera_model", _TAG_MODEL)):
        value = exif.get(tag)
        if isinstance(value, str) and value.strip("\x00 "):
            fields[key] = value.strip("\x00 ")
    fields.update(_gps(gps))
    return fields


def _gps(gps: dict[int, Any]) -> dict[str, float]:
    """Signed decimal degrees (south and west negative), or nothing if absent or nonsense."""
    out: dict[str, float] = {}
    for key, ref_tag, value_tag, negative, bound in (
        ("latitude", _GPS_LATITUDE_REF, _GPS_LATITUDE, "S", 90),
        ("longitude", _GPS_LONGITUDE_REF, _GPS_LONGITUDE, "W", 180),
    ):
        degrees = _degrees(gps.get(value_tag))
        if degrees is None or abs(degrees) > bound:
            return {}
        ref = gps.get(ref_tag)
        if isinstance(ref, bytes):
            ref = ref.decode("ascii", "replace")
        sign = -1 if isinstance(ref, str) and ref.strip("\x00 ").upper() == negative else 1
        out[key] = round(sign * degrees, _GPS_DECIMALS)
    return out


def _degrees(dms: Any) -> float | None:
    """EXIF (degrees, minutes, seconds) rationals as degrees."""
    try:
        degrees, minutes, seconds = (float(part) for part in dms)
    except (TypeError, ValueError, ZeroDivisionError):
        return None
    total = degrees + minutes / 60 + seconds / 3600
    return total if math.isfinite(total) else None


def _iso(exif_time: str) -> str:
    """EXIF's "2021:06:01 12:00:00" as ISO 8601 (local time: EXIF has no zone); else as is."""
    with contextlib.suppress(ValueError):
        return datetime.strptime(exif_time, "%Y:%m:%d %H:%M:%S").isoformat()
    return exif_time
