"""XXH3-128 content hashes, streamed, with the torn-read guard.

One reused 1 MiB bytearray per thread, filled in place by `os.readv`, runs at `xxhsum -H2`
speed on cached data (bench/run.py, the 2 GiB file figure); only the last short read is
sliced. The buffer is reused across calls on purpose: zero-filling a fresh 1 MiB buffer
costs ~19 µs, six times the cost of hashing a 1 KiB file, and halved the cold-scan rate of
100k small files.
A hash is only good if the file's size and mtime_ns were the same before and after reading
it and we read exactly `size` bytes; otherwise the file was being written and the caller
retries it later.
"""

from __future__ import annotations

import os
import stat
import threading
from collections.abc import Callable
from functools import partial
from typing import Any, NamedTuple

import xxhash

from daemon.errors import describe_os_error
from daemon.scan.walk import to_signed64

HASH_PREFIX = "xxh128:"
CHUNK_BYTES = 1 << 20
_OPEN_FLAGS = os.O_RDONLY | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC
_O_NOATIME = getattr(os, "O_NOATIME", 0)
_buffers = threading.local()


class TornReadError(OSError):
    """The file changed while it was read; its hash is not stored."""


class NotRegularFileError(OSError):
    pass


class Hashed(NamedTuple):
    content_hash: str
    size: int
    mtime_ns: int
    inode: int
    device: int


def _buffer() -> bytearray:
    buf = getattr(_buffers, "buf", None)
    if buf is None:
        buf = _buffers.buf = bytearray(CHUNK_BYTES)
    return buf


def _open(path: bytes, follow_symlinks: bool) -> int:
    return _open_with(path, _OPEN_FLAGS | (0 if follow_symlinks else os.O_NOFOLLOW))


def _open_with(path: bytes, flags: int) -> int:
    if _O_NOATIME:
        try:
            # Reading 10 TB should not rewrite 10 TB of atimes; only the owner may ask.
            return os.open(path, flags | _O_NOATIME)
        except PermissionError:
            pass
    return os.open(path, flags)


def hash_file(
    path: bytes | str,
    *,
    follow_symlinks: bool = False,
    on_bytes: Callable[[int], None] | None = None,
) -> Hashed:
    """Hash one file; raises OSError (incl. TornReadError, NotRegularFileError)."""
    return hash_file_head(path, follow_symlinks=follow_symlinks, on_bytes=on_bytes)[0]


def hash_file_head(
    path: bytes | str,
    *,
    follow_symlinks: bool = False,
    on_bytes: Callable[[int], None] | None = None,
    head_bytes: int = 0,
) -> tuple[Hashed, bytes]:
    """Hash one file and keep its first `head_bytes` bytes (for the built-in sniffers: the
    file is read once)."""
    fd = _open(os.fsencode(path), follow_symlinks)
    head = b""
    try:
        before = os.fstat(fd)
        if not stat.S_ISREG(before.st_mode):
            raise NotRegularFileError(f"not a regular file: {os.fsdecode(path)}")
        hasher = xxhash.xxh3_128()
        buf = _buffer()
        buffers = [buf]
        total = 0
        # Read the size we stat'ed, no further: a file that keeps growing (a download, a
        # log) would otherwise be read forever. Growth shows in the second fstat. os.readv
        # fills the buffer in place without a file object per call (small files pay for it).
        while total < before.st_size:
            n = os.readv(fd, buffers)
            if not n:
                break
            if n == CHUNK_BYTES:
                hasher.update(buf)
            else:
                hasher.update(memoryview(buf)[:n])
            if head_bytes and not total:
                head = bytes(buf[:min(n, head_bytes)])
            total += n
            if on_bytes is not None:
                on_bytes(n)
        after = os.fstat(fd)
    finally:
        os.close(fd)
    if (before.st_size, before.st_mtime_ns) != (after.st_size, after.st_mtime_ns) or (
        total != before.st_size
    ):
        raise TornReadError(f"changed while being read: {os.fsdecode(path)}")
    return Hashed(
        HASH_PREFIX + hasher.hexdigest(),
        before.st_size,
        before.st_mtime_ns,
        to_signed64(before.st_ino),
        to_signed64(before.st_dev),
    ), head


HASHED, TORN, VANISHED, FAILED = "hashed", "torn", "vanished", "failed"


Sniffer = Callable[[bytes, str], Any]


def hash_outcome(
    path: bytes,
    *,
    follow_symlinks: bool = False,
    on_bytes: Callable[[int], None] | None = None,
    sniff: Sniffer | None = None,
    head_bytes: int = 0,
    path_text: str = "",
) -> tuple[str, Hashed | str | None, Any]:
    """(outcome, Hashed or error text, sniffed): outcome is HASHED, TORN (changed while
    read: retried later), VANISHED or FAILED; `sniffed` is `sniff(first head_bytes bytes,
    path_text)` of a hashed file (None without `sniff`). Never raises OSError (a worker
    process returns it)."""
    try:
        hashed, head = hash_file_head(path, follow_symlinks=follow_symlinks, on_bytes=on_bytes,
                                      head_bytes=head_bytes if sniff else 0)
    except TornReadError:
        return TORN, None, None
    except FileNotFoundError:
        return VANISHED, None, None
    except OSError as exc:
        return FAILED, describe_os_error(exc), None
    return HASHED, hashed, sniff(head, path_text) if sniff else None


def hash_batch(
    root: bytes, rel_paths: list[bytes], follow_symlinks: bool,
    sniff: Sniffer | None = None, head_bytes: int = 0,
) -> list[tuple[str, tuple | str | None, Any]]:
    """`hash_outcome` of several files of one root: a worker process's unit of work.

    A hashed file's value is a plain tuple in `Hashed`'s order (`as_hashed` makes it one
    again): pickling a namedtuple calls Python per object, 2.3 µs a file against 0.4 for a
    plain tuple. The common case, a regular file that fits in the buffer and reads whole in
    one call, is `hash_file_head` inlined (same open flags, the same fstat before and after,
    the same comparison): ~13 µs a file instead of ~20 (100k files of 64-2,000 B). Anything
    else (a big file, a short read, a file that changed, an error) goes through
    `hash_outcome`, which reads it again and says what happened.
    """
    flags = _OPEN_FLAGS | (0 if follow_symlinks else os.O_NOFOLLOW)
    buf = _buffer()
    buffers, view = [buf], memoryview(buf)
    results: list[tuple[str, tuple | str | None, Any]] = []
    for rel_path in rel_paths:
        path = root + b"/" + rel_path
        value = _hash_small(path, flags, buffers, view)
        if value is not None:
            sniffed = sniff(bytes(view[:min(value[1], head_bytes)]),
                            rel_path.decode("utf-8", "backslashreplace")) if sniff else None
            results.append((HASHED, value, sniffed))
            continue
        outcome, value, sniffed = hash_outcome(
            path, follow_symlinks=follow_symlinks, sniff=sniff, head_bytes=head_bytes,
            path_text=rel_path.decode("utf-8", "backslashreplace"))
        results.append((outcome, tuple(value) if outcome == HASHED else value, sniffed))
    return results


def _hash_small(path: bytes, flags: int, buffers: list[bytearray],
                view: memoryview) -> tuple | None:
    """`hash_file_head`'s answer for a regular file that fits in the buffer and reads whole
    at once, as a plain tuple; None for anything else (the caller's general path says what).
    S_ISREG is checked before the first read, so a device or a FIFO is never read (the open
    is O_NONBLOCK | O_NOCTTY: it neither hangs nor takes a terminal)."""
    try:
        fd = _open_with(path, flags)
    except OSError:
        return None
    try:
        before = os.fstat(fd)
        size = before.st_size
        if not stat.S_ISREG(before.st_mode) or size > CHUNK_BYTES:
            return None
        read = os.readv(fd, buffers) if size else 0
        after = os.fstat(fd)
    except OSError:
        return None
    finally:
        os.close(fd)
    if read != size or after.st_size != size or after.st_mtime_ns != before.st_mtime_ns:
        return None  # torn, or short: the general path reads it again and decides
    return (HASH_PREFIX + xxhash.xxh3_128_hexdigest(view[:size]), size, before.st_mtime_ns,
            to_signed64(before.st_ino), to_signed64(before.st_dev))


as_hashed = partial(tuple.__new__, Hashed)  # a C call, not the namedtuple's Python __new__
