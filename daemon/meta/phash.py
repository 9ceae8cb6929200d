"""The built-in `phash` enricher: a 64-bit perceptual hash of an image (`{"phash": "16 hex"}`).

The classic DCT hash (as imagehash's `phash`, which it reproduces bit for bit on the same
pixels): grey levels, resized to 32×32 (Lanczos), 2-D DCT-II, the 8×8 lowest frequencies,
each bit set where the coefficient exceeds their median; bits row-major, first bit most
significant. Resizing, recompressing or brightening a picture changes few bits; a different
picture differs in about half. It is computed here with a 32×32 DCT matrix in numpy rather
than with imagehash, which needs SciPy (~40 MB) for two 32-point DCTs. JPEGs are decoded at a
reduced scale first (Pillow's `draft`), which is most of the saving: see docs/metadata.md.
Images over the decompression-bomb limit are not decoded (`image.decode_check`).
"""

from __future__ import annotations

from typing import Any

import numpy as np
from PIL import Image, ImageFile

from daemon.meta import image as image_enricher
from daemon.meta import pillow_open

HASH_BITS = 64
_SIDE = 8  # 8×8 low frequencies = 64 bits
_RESIZED = 32  # imagehash's hash_size 8 × highfreq_factor 4
_DRAFT_SIDE = 4 * _RESIZED  # JPEG: decode at the smallest scale still >= 128 px


def _dct_matrix(n: int) -> np.ndarray:
    k = np.arange(n)[:, None]
    return np.cos(np.pi * k * (2 * np.arange(n)[None, :] + 1) / (2 * n))


_DCT = _dct_matrix(_RESIZED)


def describe(path: bytes) -> dict[str, Any]:
    return describe_with_image(path, with_image=False)["phash"]


def describe_with_image(path: bytes, *, with_image: bool = True) -> dict[str, Any]:
    """{"image": ..., "phash": ...} from one decode of the file (`{"phash": ...}` alone).

    The decode is phash's (grey, reduced to >= 128 px where the format allows): it reads the
    whole stream as `image`'s own check does, so a truncated file fails it the same way, and
    it costs one decode where the two enrichers apart cost two (see docs/metadata.md).
    """
    try:
        with open(path, "rb") as f:
            image = pillow_open.identify(f)
            if image is None:
                error = {"error": "UnidentifiedImageError: cannot identify image file"}
                return {"image": error, "phash": error} if with_image else {"phash": error}
            with image:
                return _describe_open(image, with_image)
    except OSError as exc:
        if isinstance(exc, FileNotFoundError | PermissionError | IsADirectoryError):
            raise  # the file, not its content: the runner retries later
        error = {"error": image_enricher.message(exc, path)}
        return {"image": error, "phash": error} if with_image else {"phash": error}


def _describe_open(image: ImageFile.ImageFile, with_image: bool) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if with_image:  # the header's size and EXIF, before `draft` reduces the size
        out["image"] = image_enricher.header_fields(image)
    image.draft("L", (_DRAFT_SIDE, _DRAFT_SIDE))
    error = image_enricher.decode_check(image)
    if error is not None:
        out["phash"] = {"error": error}
        if with_image:
            out["image"]["error"] = error
        return out
    try:
        out["phash"] = {"phash": phash_hex(image)}
    except Exception as exc:  # an odd mode Pillow cannot convert
        out["phash"] = {"error": f"{type(exc).__name__}: {exc}"}
    return out


def phash_hex(image: Image.Image) -> str:
    grey = image.convert("L").resize((_RESIZED, _RESIZED), Image.Resampling.LANCZOS)
    pixels = np.asarray(grey, dtype=np.float64)
    low = (_DCT @ pixels @ _DCT.T)[:_SIDE, :_SIDE]
    bits = (low > np.median(low)).flatten()
    return f"{int(''.join('1' if bit else '0' for bit in bits), 2):016x}"
