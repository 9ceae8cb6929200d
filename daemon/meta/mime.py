"""The built-in `mime` enricher: magic bytes first, the file name's extension second.

The extension table is Python's built-in one, never the host's /etc/mime.types: hosts sharing a
database must compute the same insight for the same content. Magic bytes win because the bytes
are what the insight is keyed by; an extension only refines a generic container (a .docx is a
ZIP) or names what has no signature (text, CSV, JSON).
"""

from __future__ import annotations

import mimetypes
from typing import Any

SNIFF_BYTES = 4096
_EXTENSIONS = mimetypes.MimeTypes(filenames=())
# ZIP-based formats Python's own table lacks (the host's mime.types usually has them).
for _extension, _type in {
    ".docx": "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
    ".xlsx": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
    ".pptx": "application/vnd.openxmlformats-officedocument.presentationml.presentation",
    ".odt": "application/vnd.oasis.opendocument.text",
    ".ods": "application/vnd.oasis.opendocument.spreadsheet",
    ".odp": "application/vnd.oasis.opendocument.presentation",
    ".epub": "application/epub+zip",
    ".jar": "application/java-archive",
    ".apk": "application/vnd.android.package-archive",
}.items():
    _EXTENSIONS.add_type(_type, _extension)
# Signatures that name a container, not a format: the extension may say more.
_GENERIC = {"application/zip", "application/octet-stream", "text/plain", "application/x-ole2"}

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


def detect(path: bytes, path_text: str) -> dict[str, Any]:
    with open(path, "rb") as f:
        head = f.read(SNIFF_BYTES)
    return detect_buffer(head, path_text)


def detect_buffer(head: bytes, path_text: str) -> dict[str, Any]:
    """The insight from the first `SNIFF_BYTES` bytes (a scan passes the bytes its hashing
    read, so a new file is read once)."""
    head = head[:SNIFF_BYTES]
    by_magic = sniff(head)
    by_extension, _ = _EXTENSIONS.guess_type(path_text, strict=False)
    if by_magic is not None and (by_magic not in _GENERIC or by_extension is None):
        return {"mime": by_magic, "detected_by": "magic"}
    if by_extension is not None:
        return {"mime": by_extension, "detected_by": "extension"}
    return {"mime": "application/octet-stream", "detected_by": "default"}
