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
from PIL import Image

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
    with open(path, "rb") as f:
        image = pillow_open.identify(f)
        if image is None:
            return {"error": "UnidentifiedImageError: cannot identify image file"}
        with image:
            image.draft("L", (_DRAFT_SIDE, _DRAFT_SIDE))
            error = image_enricher.decode_check(image)
            if error is not None:
                return {"error": error}
            try:
                return {"phash": phash_hex(image)}
            except Exception as exc:  # an odd mode Pillow cannot convert
                return {"error": f"{type(exc).__name__}: {exc}"}


def phash_hex(image: Image.Image) -> str:
    grey = image.convert("L").resize((_RESIZED, _RESIZED), Image.Resampling.LANCZOS)
    pixels = np.asarray(grey, dtype=np.float64)
    low = (_DCT @ pixels @ _DCT.T)[:_SIDE, :_SIDE]
    bits = (low > np.median(low)).flatten()
    return f"{int(''.join('1' if bit else '0' for bit in bits), 2):016x}"
