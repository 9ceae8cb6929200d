"""The built-in `mime` enricher: the media type libmagic (`file --mime-type`) gives the bytes.

libmagic is a system library (Debian: `apt-get install libmagic1`), loaded through
python-magic. Where it cannot be loaded, `pip install .` and assetd still work and `mime` answers
from the built-in table in `mime_table` (a few dozen signatures, then the extension);
`unavailable_reason()` says why, for `config check` and the daemon's one warning at start. The
backend (`backend()`) is part of the enricher's checksum, so installing libmagic later re-runs
`mime`.

Every scan needs that checksum, few need libmagic's answers: `assetd scan --no-enrich` and a
rescan with nothing new sniff nothing. Importing python-magic runs `ldconfig -p` twice (its
loader, then its compat module) and loads the magic database twice, ~30 ms of a one-shot
scan's ~0.15 s of start-up. So the backend is decided by loading libmagic by its soname with
ctypes (~0.1 ms; python-magic's own loader falls back to the same name on Linux), and
python-magic is imported only where its answers are wanted (`preload`, or the first call).
Elsewhere (no soname to try, or it did not load) python-magic's own search decides.

libmagic is fed the first `SNIFF_BYTES` of the file, never its path: the scanner can hand over
the block it already read for hashing (`detect_buffer`). 64 KiB covers what `file` needs for
common formats (an ISO 9660 volume descriptor sits at 32 KiB; Office documents name their
parts after the first ZIP entries). What it costs, measured on a 2-core machine with libmagic
5.44: 12 µs for a JPEG or PNG, 30 µs for a PDF, 90-250 µs for an MP3, FLAC, WAV, MP4, WebM or
WebP (their rules come late), ~210 µs for bytes nothing matches (every soft-magic rule runs),
~1-2 ms for plain text; the built-in table costs 1-6 µs. Two things cut that, each giving
libmagic's own answer:
- the common media formats whose type a fixed field decides get libmagic's answer for their
  class, asked once a process (`mime_signature`): ~1-4 µs;
- after a process's first `SPLIT_AFTER_CALLS` files, libmagic answers from a database without
  the rules the first bytes rule out (`magic_split`): random bytes ~36 µs.
ctypes releases the GIL during the call, so threads run it in parallel.

When libmagic has no answer (`application/octet-stream`), Pillow's identification is asked
(by the plugins with a signature: DDS, SGI ... that libmagic does not name), then the
extension.
Value: `{"mime": ..., "detected_by": "libmagic" | "pillow" | "extension" | "default"}`, or
with the table `"magic"` in place of `"libmagic"`. `"mime"` is always the first key: the
content rules of the other built-ins look for it in the stored JSON text (`content.py`).
"""

from __future__ import annotations

import ctypes
import functools
import io
import json
import sys
import threading
from collections.abc import Callable
from typing import Any

from daemon.meta import magic_split, mime_signature, mime_table

SNIFF_BYTES = 64 * 1024
OCTET_STREAM = mime_table.OCTET_STREAM
_UTF8_LEAD_MIN = 0xC0
LIBMAGIC, TABLE = "libmagic", "table"
_LINUX_SONAME = "libmagic.so.1"

SPLIT_AFTER_CALLS = 1000
_whole_database_calls = 0
_per_thread = threading.local()  # a libmagic cookie is not safe to share between threads


def backend() -> str:
    """`LIBMAGIC` where libmagic loads on this host, else `TABLE`."""
    return _probe()[0]


def unavailable_reason() -> str | None:
    """Why libmagic is not used here (None: it is)."""
    return _probe()[1]


@functools.cache
def _probe() -> tuple[str, str | None]:
    """(backend, why not libmagic): asked once a process, without python-magic where the
    soname loads (see the module docstring)."""
    if sys.platform.startswith("linux"):
        try:
            ctypes.CDLL(_LINUX_SONAME)
        except OSError:
            pass
        else:
            return LIBMAGIC, None
    try:
        _python_magic()
    except ImportError as exc:  # python-magic raises ImportError when libmagic will not load
        return TABLE, (
            f"libmagic not loaded ({exc}); using the built-in table of common formats;"
            " for libmagic's answers install it (Debian/Ubuntu: apt-get install libmagic1)"
        )
    return LIBMAGIC, None


def _python_magic():
    import magic

    return magic


def preload() -> None:
    """Import python-magic now where it will be used: before a pool forks its workers,
    which would otherwise each import it (and run `ldconfig` twice) for their first file."""
    if backend() == LIBMAGIC:
        _python_magic()


def detect(path: bytes, path_text: str) -> dict[str, Any]:
    """The insight value for the file at `path`: reads its head and calls `detect_buffer`."""
    with open(path, "rb") as f:
        head = f.read(SNIFF_BYTES)
    return detect_buffer(head, path_text)


def detect_buffer_json(head: bytes, path_text: str) -> str:
    """`detect_buffer` as the insight's stored JSON: what the scanner's hash workers send back
    (scan/sniffed.py). They get it by reference, so it lives here: a worker imports this module
    (and libmagic), not the scanner with the store behind it."""
    return json.dumps(detect_buffer(head, path_text), ensure_ascii=False)


def detect_buffer(head: bytes, path_text: str) -> dict[str, Any]:
    """The insight value from the file's first bytes (at most `SNIFF_BYTES` are looked at)."""
    head = head[:SNIFF_BYTES]
    if backend() == TABLE:
        value = mime_table.detect_table(head, path_text)
        if value["detected_by"] != "magic":
            value = _by_pillow(head) or value
        return value
    libmagic = _libmagic().from_buffer
    media_format = mime_signature.signature(head)
    if media_format is not None:
        found = mime_signature.answer(media_format, libmagic)
        if found != OCTET_STREAM:  # an older libmagic that does not know the format: ask it
            return {"mime": found, "detected_by": "libmagic"}
    found = _by_libmagic(_whole_characters(head), libmagic)
    if found and found != OCTET_STREAM:
        return {"mime": found, "detected_by": "libmagic"}
    by_pillow = _by_pillow(head)
    if by_pillow is not None:
        return by_pillow
    by_extension = mime_table.guess_by_extension(path_text)
    if by_extension is not None:
        return {"mime": by_extension, "detected_by": "extension"}
    return {"mime": OCTET_STREAM, "detected_by": "default"}


def _by_libmagic(head: bytes, whole_database: Callable[[bytes], str]) -> str:
    """libmagic's answer; after the process's first `SPLIT_AFTER_CALLS` calls, without the
    rules `head`'s first bytes rule out, where the host's database can be split
    (`magic_split`: the same answers). Splitting costs ~0.2 s once, what ~1,000 files of
    random bytes save, so a process that asks about a few files never pays it."""
    global _whole_database_calls
    if _whole_database_calls < SPLIT_AFTER_CALLS:
        _whole_database_calls += 1  # a lost update between threads only splits a bit later
        return whole_database(head)
    split = magic_split.split()
    return whole_database(head) if split is None else split.answer(head, whole_database)


def _libmagic():
    cookie = getattr(_per_thread, "magic", None)
    if cookie is None:
        cookie = _per_thread.magic = _python_magic().Magic(mime=True)
    return cookie


def _whole_characters(head: bytes) -> bytes:
    """A full block cut inside a UTF-8 character loses that partial character.

    libmagic takes a text file whose sniffed block ends mid-character for binary data; the
    file itself goes on, so the cut is the block's, not the content's.
    """
    if len(head) < SNIFF_BYTES:
        return head
    for back in range(1, 4):
        byte = head[-back]
        if byte >= _UTF8_LEAD_MIN:  # a lead byte: is its sequence complete?
            needed = 2 if byte < 0xE0 else 3 if byte < 0xF0 else 4
            return head if needed <= back else head[:-back]
        if byte < 0x80:
            return head
    return head


def _by_pillow(head: bytes) -> dict[str, Any] | None:
    from daemon.meta import pillow_open  # Pillow only when libmagic had no answer

    try:
        image = pillow_open.identify(io.BytesIO(head), by_signature_only=True)
    except Exception:  # a plugin choking on a cut-off header: not identified
        return None
    if image is None:
        return None
    return {"mime": pillow_open.mime_of(image), "detected_by": "pillow"}
