"""Pillow's own identification of an image, without its decompression-bomb refusal.

`PIL.Image.open` refuses (raises) when the header announces more than twice
`Image.MAX_IMAGE_PIXELS`, so a bomb would get no size at all. Reading the header is safe: only
decoding allocates the pixels. This is `Image.open`'s loop over the registered plugins (every
plugin, in Pillow's registration order, so every host identifies a file the same way), minus
that check; the caller decides whether to decode.
"""

from __future__ import annotations

import struct
from typing import IO

from PIL import Image, ImageFile

_PREFIX_BYTES = 16


def identify(fp: IO[bytes], *, by_signature_only: bool = False) -> ImageFile.ImageFile | None:
    """The opened (header-parsed, not decoded) image, or None if no plugin accepts it.

    `by_signature_only` skips the plugins that have no signature test (TGA, SPIDER, IM, IMT,
    IPTC, PCD) and try to parse anything: `mime` asks Pillow about every file libmagic could
    not name, and those six made that cost ~600 µs a file on random bytes, for formats that
    are rare or that libmagic already names (TGA).
    """
    Image.init()
    fp.seek(0)
    prefix = fp.read(_PREFIX_BYTES)
    for format_id in Image.ID:
        factory, accept = Image.OPEN[format_id]
        if accept is None and by_signature_only:
            continue
        accepted = accept(prefix) if accept else True
        if isinstance(accepted, str) or not accepted:  # a str is a "possibly, but" warning
            continue
        fp.seek(0)
        try:
            return factory(fp, "")
        except (SyntaxError, IndexError, TypeError, ValueError, EOFError, OSError,
                struct.error):
            continue  # as Image.open does: not this format, try the next plugin
    return None


def mime_of(image: ImageFile.ImageFile) -> str:
    """The media type Pillow registers for the format, else `image/x-<format>`."""
    return Image.MIME.get(image.format or "") or f"image/x-{(image.format or 'unknown').lower()}"
