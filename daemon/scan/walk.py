"""Walk a library root (or part of it) with os.scandir: regular files only, excludes applied.

Everything is bytes: names that are not valid UTF-8 must survive the round trip to the
database and back to `open()`. FIFOs, sockets and devices are recognised from the stat of the
directory entry and never opened (opening a FIFO for reading blocks forever). Symlinks are
skipped unless `follow_symlinks`; then each directory is entered once by (device, inode), so a
symlink loop ends.
"""

from __future__ import annotations

import os
import stat
from bisect import bisect_left
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from functools import partial
from operator import itemgetter
from typing import NamedTuple

from daemon.errors import describe_os_error
from daemon.keys import encode_keys
from daemon.scan.filters import ExcludeMatcher


class DiskEntry(NamedTuple):
    rel_path: bytes
    size: int
    mtime_ns: int
    inode: int
    device: int


# The namedtuple's own constructor is a Python function; this is a C call (a million files).
new_entry = partial(tuple.__new__, DiskEntry)


class WalkRun(NamedTuple):
    """A run of the walk for the scan's merge: its files' `encode_keys` (b"" where they were
    not spelled: a library with no rows has nothing to compare them with), and the files."""

    keys: bytes
    entries: Callable[[], list[tuple]]


def keyed_runs(runs: Iterable[list[DiskEntry]], *, keys: bool = True) -> Iterator[WalkRun]:
    """`walk_runs` as the merge takes them (a walk in this process); without `keys` (a
    library with no rows: nothing to compare) their keys are b"", not spelled."""
    for run in runs:
        yield run_of(run, encode_keys(run) if keys else b"")


def run_of(entries: list[tuple], keys: bytes = b"") -> WalkRun:
    """A `WalkRun` of entries already at hand (DiskEntry or plain tuples in its order)."""
    return WalkRun(keys, partial(_same, entries))


def _same(entries: list[tuple]) -> list[tuple]:
    return entries


@dataclass
class WalkResult:
    entries: dict[bytes, DiskEntry] = field(default_factory=dict)
    # Directories we could not list: rows under them must not be marked missing.
    unreadable: list[bytes] = field(default_factory=list)
    errors: list[tuple[bytes, str]] = field(default_factory=list)
    skipped_special: int = 0


_2_63, _2_64 = 1 << 63, 1 << 64


def to_signed64(value: int) -> int:
    """Inodes and device numbers are unsigned 64-bit; both databases store signed BIGINT."""
    return value - _2_64 if value >= _2_63 else value


def entry_from_stat(rel_path: bytes, st: os.stat_result) -> DiskEntry:
    return DiskEntry(
        rel_path, st.st_size, st.st_mtime_ns, to_signed64(st.st_ino), to_signed64(st.st_dev)
    )


def join_rel(rel_dir: bytes, name: bytes) -> bytes:
    return rel_dir + b"/" + name if rel_dir else name


class WalkOptions(NamedTuple):
    """What a library's walks leave out, whichever part of it they walk and how."""

    matcher: ExcludeMatcher = ExcludeMatcher(())
    follow_symlinks: bool = False
    # Absolute paths never indexed: the database's own files, where they lie in a library.
    skip_abs: frozenset[bytes] = frozenset()


EVERY_FILE = WalkOptions()  # nothing excluded, symlinks not followed


def walk(root: bytes, scope: bytes = b"", options: WalkOptions = EVERY_FILE) -> WalkResult:
    """Regular files under `root/scope`, collected (tests and small callers)."""
    result = WalkResult()
    for entry in walk_sorted(root, scope, result, options):
        result.entries[entry.rel_path] = entry
    return result


def walk_sorted(root: bytes, scope: bytes, result: WalkResult,
                options: WalkOptions = EVERY_FILE) -> Iterator[DiskEntry]:
    """`walk_runs`, one entry at a time."""
    for run in walk_runs(root, scope, result, options):
        yield from run


def walk_runs(
    root: bytes,
    scope: bytes,
    result: WalkResult,
    options: WalkOptions = EVERY_FILE,
    *,
    half: int | None = None,
) -> Iterator[list[DiskEntry]]:
    """Regular files under `root/scope` (b"" = the whole root; it may name a file) in the
    byte order of their rel_path: the order the database index returns rows in, so a scan
    merges the two streams holding one directory listing at a time. They come in runs: the
    files of one directory between two of its subdirectories (usually all of them), so the
    scan can compare a whole run with the database's rows in one list comparison.

    Unreadable directories, errors and skipped special files are recorded in `result` (its
    `entries` stay empty) as the walk reaches them, i.e. before any path that sorts after them.
    `half` (0 or 1) walks only that half of the scope directory's items (its runs of files and
    its subdirectories, in order): two walkers, one per core (walkproc.py).
    """
    if scope:
        if options.matcher.excluded(scope, is_dir=False):
            return
        start = root + b"/" + scope
        try:
            st = os.stat(start) if options.follow_symlinks else os.lstat(start)
        except FileNotFoundError:
            return
        except OSError as exc:
            result.unreadable.append(scope)
            result.errors.append((scope, describe_os_error(exc)))
            return
        if stat.S_ISREG(st.st_mode):
            if start not in options.skip_abs and not half:
                yield [entry_from_stat(scope, st)]
            return
        if not stat.S_ISDIR(st.st_mode):
            return
    yield from _walk_tree(root, scope, options, result, half)


def _walk_tree(
    root: bytes,
    scope: bytes,
    options: WalkOptions,
    result: WalkResult,
    half: int | None = None,
) -> Iterator[list[DiskEntry]]:
    """Depth first, each directory's items sorted by name, a subdirectory keyed `name/`.

    Full paths then come out in byte order: `a.txt` < `a/x` < `ab` because `.` < `/` < `b`,
    and the keys `a.txt`, `a/`, `ab` sort the same way. Each stack level holds one sorted
    listing (the rest of that directory), so memory is O(depth x directory size).
    """
    visited_dirs: set[tuple[int, int]] = set()
    prefix = root + b"/"
    skip_rel = frozenset(p[len(prefix):] for p in options.skip_abs if p.startswith(prefix))
    matcher, follow_symlinks = options.matcher, options.follow_symlinks
    if follow_symlinks:
        top = os.stat(root + b"/" + scope if scope else root)
        visited_dirs.add((top.st_dev, top.st_ino))

    def runs_of(rel_dir: bytes) -> Iterator[list[DiskEntry] | bytes]:
        return _runs(*_list_dir(root, rel_dir, matcher, follow_symlinks, skip_rel,
                                visited_dirs, result))

    recorded = len(result.unreadable), len(result.errors), result.skipped_special
    top = runs_of(scope)
    if half is not None:
        items = list(top)
        middle = (len(items) + 1) // 2
        top = iter(items[middle:] if half else items[:middle])
        if half:  # what listing the top found is the first half's to report
            del result.unreadable[recorded[0]:], result.errors[recorded[1]:]
            result.skipped_special = recorded[2]
    stack = [top]
    while stack:
        for item in stack[-1]:
            if item.__class__ is list:
                yield item
                continue
            stack.append(runs_of(item))
            break
        else:
            stack.pop()


_rel_path_of = itemgetter(0)


def _runs(files: list[DiskEntry], subdirs: list[bytes]) -> Iterator[list[DiskEntry] | bytes]:
    """A directory's files (sorted) in runs, each subdirectory (its rel path) between them
    where its key `name/` sorts."""
    start = 0
    for subdir in subdirs:
        end = bisect_left(files, subdir + b"/", lo=start, key=_rel_path_of)
        if end > start:
            yield files[start:end]
        yield subdir
        start = end
    if start < len(files):
        yield files[start:] if start else files


def _list_dir(root, rel_dir, matcher, follow_symlinks, skip_rel, visited_dirs,
              result) -> tuple[list[DiskEntry], list[bytes]]:
    """One directory's regular files and its subdirectories to enter, each sorted."""
    abs_dir = root + b"/" + rel_dir if rel_dir else root
    try:
        with os.scandir(abs_dir) as it:
            dir_entries = list(it)
    except FileNotFoundError:
        return [], []  # removed while we walked: its rows are missing, which is the truth
    except OSError as exc:
        result.unreadable.append(rel_dir)
        result.errors.append((rel_dir, describe_os_error(exc)))
        return [], []
    files: list[DiskEntry] = []
    subdirs: list[bytes] = []
    prefix = rel_dir + b"/" if rel_dir else b""
    # Locals, and no exclude call when nothing is excluded: this loop runs once per file.
    excluded = matcher.excluded if matcher.active else None
    is_regular, make_entry, append = stat.S_ISREG, new_entry, files.append
    for entry in dir_entries:
        rel = prefix + entry.name
        try:
            # The common case, inlined: the 100k-file rescan spends most of its time here.
            # d_type says "regular file" without a syscall; the lstat confirms it.
            if entry.is_file(follow_symlinks=False):
                st = entry.stat(follow_symlinks=False)
                if is_regular(st.st_mode):
                    if (excluded is None or not excluded(rel, is_dir=False)) and (
                            not skip_rel or rel not in skip_rel):
                        ino, dev = st.st_ino, st.st_dev
                        append(make_entry((
                            rel, st.st_size, st.st_mtime_ns,
                            ino if ino < _2_63 else ino - _2_64,
                            dev if dev < _2_63 else dev - _2_64,
                        )))
                    continue
            item = _visit(entry, rel, matcher, follow_symlinks, skip_rel, visited_dirs, result)
            if item.__class__ is bytes:
                subdirs.append(item)
            elif item is not None:
                append(item)
        except FileNotFoundError:
            continue
        except OSError as exc:
            result.errors.append((rel, describe_os_error(exc)))
    files.sort(key=_rel_path_of)
    subdirs.sort()
    return files, subdirs


def _visit(entry, rel, matcher, follow_symlinks, skip_rel, visited_dirs,
           result) -> DiskEntry | bytes | None:
    """Anything but a plain regular file: a directory to enter (its rel path), a followed
    symlink's entry, or nothing (a special file, an excluded path)."""
    if entry.is_symlink():
        if not follow_symlinks:
            return None
        st = entry.stat(follow_symlinks=True)
    elif entry.is_dir(follow_symlinks=False):
        if matcher.excluded(rel, is_dir=True) or rel in skip_rel:
            return None
        if follow_symlinks:
            st = entry.stat(follow_symlinks=False)
            key = (st.st_dev, st.st_ino)
            if key in visited_dirs:
                return None
            visited_dirs.add(key)
        return rel
    else:
        st = entry.stat(follow_symlinks=False)
    if stat.S_ISDIR(st.st_mode):  # a followed symlink to a directory
        key = (st.st_dev, st.st_ino)
        if key in visited_dirs or matcher.excluded(rel, is_dir=True):
            return None
        visited_dirs.add(key)
        return rel
    if not stat.S_ISREG(st.st_mode):
        result.skipped_special += 1
        return None
    if matcher.excluded(rel, is_dir=False) or rel in skip_rel:
        return None
    return entry_from_stat(rel, st)
