"""`mime`'s built-in table, used where libmagic is not installed: magic bytes, then extension.

It knows the signatures of common media and container formats (a few dozen); libmagic knows
thousands, so `config check` says when this table is what answers. The extension table is
Python's built-in one, never the host's /etc/mime.types: hosts sharing a database must compute
the same insight for the same content. Magic bytes win because the bytes are what the insight
is keyed by; an extension only refines a generic container (a .docx is a ZIP) or names what
has no signature (text, CSV, JSON).
"""

from __future__ import annotations

import functools
import mimetypes
from typing import Any

# ZIP-based formats Python's own table lacks (the host's mime.types usually has them).
_ZIP_BASED = {
    ".docx": "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
    ".xlsx": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
    ".pptx": "application/vnd.openxmlformats-officedocument.presentationml.presentation",
    ".odt": "application/vnd.oasis.opendocument.text",
    ".ods": "application/vnd.oasis.opendocument.spreadsheet",
    ".odp": "application/vnd.oasis.opendocument.presentation",
    ".epub": "application/epub+zip",
    ".jar": "application/java-archive",
    ".apk": "application/vnd.android.package-archive",
}
# Signatures that name a container, not a format: the extension may say more.
OCTET_STREAM = "application/octet-stream"
_GENERIC = {"application/zip", OCTET_STREAM, "text/plain", "application/x-ole2"}

_MAGIC: tuple[tuple[int, bytes, str], ...] = (
    (0, b"\x89PNG\r\n\x1a\n", "image/png"),
    (0, b"\xff\xd8\xff", "image/jpeg"),
    (0, b"GIF87a", "image/gif"),
    (0, b"GIF89a", "image/gif"),
    (0, b"II*\x00", "image/tiff"),
    (0, b"MM\x00*", "image/tiff"),
    (0, b"BM", "image/bmp"),
    (0, b"%PDF-", "application/pdf"),
    (0, b"PK\x03\x04", "application/zip"),
    (0, b"\x1f\x8b", "application/gzip"),
    (0, b"BZh", "application/x-bzip2"),
    (0, b"\xfd7zXZ\x00", "application/x-xz"),
    (0, b"(\xb5/\xfd", "application/zstd"),
    (0, b"7z\xbc\xaf'\x1c", "application/x-7z-compressed"),
    (0, b"\x1aE\xdf\xa3", "video/x-matroska"),
    (0, b"OggS", "audio/ogg"),
    (0, b"fLaC", "audio/flac"),
    (0, b"ID3", "audio/mpeg"),
    (0, b"\x7fELF", "application/x-executable"),
    (0, b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1", "application/x-ole2"),
    (0, b"SQLite format 3\x00", "application/vnd.sqlite3"),
)
_RIFF = {b"WEBP": "image/webp", b"WAVE": "audio/wav", b"AVI ": "video/x-msvideo"}
_FTYP = {
    b"heic": "image/heic", b"heix": "image/heic", b"mif1": "image/heif", b"avif": "image/avif",
    b"qt  ": "video/quicktime", b"M4A ": "audio/mp4", b"3gp4": "video/3gpp",
}


def sniff(head: bytes) -> str | None:
    """The MIME type the first bytes announce, if any."""
    if not head:
        return "inode/x-empty"
    for offset, signature, mime in _MAGIC:
        if head.startswith(signature, offset):
            return mime
    if head.startswith(b"RIFF") and head[8:12] in _RIFF:
        return _RIFF[head[8:12]]
    if head[4:8] == b"ftyp":
        return _FTYP.get(head[8:12], "video/mp4")
    if b"\x00" not in head and _is_utf8_prefix(head):
        return "text/plain"
    return None


def _is_utf8_prefix(head: bytes) -> bool:
    """UTF-8, allowing a multi-byte character cut off at the end of the sniffed block."""
    for cut in range(4):
        try:
            head[: len(head) - cut].decode("utf-8")
            return True
        except UnicodeDecodeError:
            continue
    return False


def detect_table(head: bytes, path_text: str) -> dict[str, Any]:
    """The insight value from the table: magic bytes, then the extension, else the default."""
    by_magic = sniff(head)
    by_extension = guess_by_extension(path_text)
    if by_magic is not None and (by_magic not in _GENERIC or by_extension is None):
        return {"mime": by_magic, "detected_by": "magic"}
    if by_extension is not None:
        return {"mime": by_extension, "detected_by": "extension"}
    return {"mime": OCTET_STREAM, "detected_by": "default"}


def guess_by_extension(path_text: str) -> str | None:
    return _extensions().guess_type(path_text, strict=False)[0]


@functools.cache
def _extensions() -> mimetypes.MimeTypes:
    """Built on first use (~2 ms): every scan imports this module, few ask it anything."""
    table = mimetypes.MimeTypes(filenames=())
    for extension, mime_type in _ZIP_BASED.items():
        table.add_type(mime_type, extension)
    return table
