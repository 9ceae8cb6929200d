import os

import pytest

from daemon.scan.filters import ExcludeMatcher
from daemon.scan.walk import WalkOptions, walk
from tests.conftest import write_tree


def rels(result) -> set[bytes]:
    return set(result.entries)


def test_walks_nested_regular_files_with_stat(tmp_path):
    write_tree(tmp_path, {"a.txt": "aa", "d/e/f.bin": "ffff"})
    result = walk(os.fsencode(tmp_path))
    assert rels(result) == {b"a.txt", b"d/e/f.bin"}
    entry = result.entries[b"d/e/f.bin"]
    st = os.stat(tmp_path / "d/e/f.bin")
    assert (entry.size, entry.mtime_ns, entry.inode) == (4, st.st_mtime_ns, st.st_ino)


def test_fifo_socket_are_skipped_without_opening(tmp_path):
    write_tree(tmp_path, {"real": "x"})
    os.mkfifo(tmp_path / "pipe")  # opening it for reading would block forever
    result = walk(os.fsencode(tmp_path))
    assert rels(result) == {b"real"}
    assert result.skipped_special == 1


def test_symlinks_skipped_by_default(tmp_path):
    write_tree(tmp_path, {"target/file": "x"})
    os.symlink(tmp_path / "target/file", tmp_path / "link")
    os.symlink(tmp_path / "target", tmp_path / "dirlink")
    assert rels(walk(os.fsencode(tmp_path))) == {b"target/file"}


def test_follow_symlinks_detects_loops(tmp_path):
    write_tree(tmp_path, {"a/file": "x"})
    os.symlink(tmp_path, tmp_path / "a/loop")  # a/loop -> root -> a -> loop ...
    os.symlink(tmp_path / "a/file", tmp_path / "filelink")
    result = walk(os.fsencode(tmp_path), options=WalkOptions(follow_symlinks=True))
    assert rels(result) == {b"a/file", b"filelink"}


def test_non_utf8_names_are_kept_as_bytes(tmp_path):
    name = b"caf\xe9-\xff.jpg"
    with open(os.path.join(os.fsencode(tmp_path), name), "wb") as f:
        f.write(b"x")
    assert rels(walk(os.fsencode(tmp_path))) == {name}


def test_excludes_prune_directories_and_names(tmp_path):
    write_tree(tmp_path, {"keep.jpg": "k", "x.tmp": "t", "sub/y.tmp": "t", ".cache/z": "c",
                          "sub/.cache/w": "kept: anchored pattern", "raw/a.cr2": "r",
                          "raw/deep/b.cr2": "r"})
    matcher = ExcludeMatcher(["*.tmp", ".cache/**", "raw/*.cr2"])
    assert rels(walk(os.fsencode(tmp_path), options=WalkOptions(matcher))) == {
        b"keep.jpg", b"sub/.cache/w", b"raw/deep/b.cr2",
    }


def test_scope_limits_the_walk_to_a_directory_or_file(tmp_path):
    write_tree(tmp_path, {"a/1": "1", "a/2": "2", "ab/3": "3", "b/4": "4"})
    root = os.fsencode(tmp_path)
    assert rels(walk(root, b"a")) == {b"a/1", b"a/2"}
    assert rels(walk(root, b"b/4")) == {b"b/4"}
    assert rels(walk(root, b"gone")) == set()


def test_skip_paths_are_not_indexed(tmp_path):
    write_tree(tmp_path, {"index.db": "db", "index.db-wal": "w", "photo": "p"})
    skip = frozenset({os.fsencode(tmp_path / "index.db"), os.fsencode(tmp_path / "index.db-wal")})
    assert rels(walk(os.fsencode(tmp_path), options=WalkOptions(skip_abs=skip))) == {b"photo"}


def test_walk_sorted_yields_paths_in_byte_order(tmp_path):
    from daemon.scan.walk import WalkResult, walk_sorted

    names = ["a.txt", "a/x", "a/y/z", "ab", "a0", "b", "a/\xe9", "A"]
    for name in names:
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(name)
    result = WalkResult()
    walked = [e.rel_path for e in walk_sorted(os.fsencode(tmp_path), b"", result)]
    assert walked == sorted(os.fsencode(n) for n in names)
    assert result.entries == {}  # streamed, not collected


@pytest.mark.parametrize("spawn", [False, True], ids=["forked", "spawned"])
def test_walk_in_children_sends_the_same_runs_and_what_the_walk_recorded(tmp_path, spawn):
    """The children's runs (two halves of the top directory) equal the in-process walk's
    (subdirectories split a directory's files into runs), and the special files they skipped
    reach the parent's result once; forked (`assetd scan`) or spawned (the daemon)."""
    from functools import partial

    from daemon.keys import encode_keys
    from daemon.scan.walk import WalkResult, walk_runs
    from daemon.scan.walkproc import walk_runs_in_children

    walk_runs_in_children = partial(walk_runs_in_children, spawn=spawn)
    names = ["a.txt", "a/x", "a/y/z", "ab", "a0", "b", "a/\xe9", "c/d/e"]
    write_tree(tmp_path, {name: name for name in names})
    os.mkfifo(tmp_path / "a" / "fifo")
    os.mkfifo(tmp_path / "fifo")  # in the top directory, which both halves' walkers list
    root = os.fsencode(tmp_path)
    here, there = WalkResult(), WalkResult()
    expected = [list(map(tuple, run)) for run in walk_runs(root, b"", here)]
    # a.txt | a/x | a/y/z | a/\xe9 | a0 ab b | c/d/e
    assert [len(run) for run in expected] == [1, 1, 1, 1, 3, 1]
    forked = list(walk_runs_in_children(root, b"", there))
    assert [run.entries() for run in forked] == expected
    assert [run.keys for run in forked] == [encode_keys(run) for run in expected]
    assert there.skipped_special == here.skipped_special == 2
    # A cold scan's children send the files, not their keys.
    cold = list(walk_runs_in_children(root, b"", WalkResult(), keys=False))
    assert [run.entries() for run in cold] == expected and {run.keys for run in cold} == {b""}
    assert [run.entries() for run in walk_runs_in_children(root, b"a/y", WalkResult())] == [
        [expected[2][0]]]


@pytest.mark.parametrize("spawn", [False, True], ids=["forked", "spawned"])
def test_walk_in_children_applies_the_walk_options(tmp_path, spawn):
    """Excludes and skipped paths reach the children: they walk with the caller's options."""
    from daemon.scan.walk import WalkResult, walk_runs
    from daemon.scan.walkproc import walk_runs_in_children

    write_tree(tmp_path, {"a/x": "x", "a/x.tmp": "t", "b/y": "y", "index.db": "db", "z": "z"})
    root = os.fsencode(tmp_path)
    options = WalkOptions(ExcludeMatcher(["*.tmp"]), skip_abs=frozenset({root + b"/index.db"}))
    walked = [list(map(tuple, run)) for run in walk_runs(root, b"", WalkResult(), options)]
    assert [entry[0] for run in walked for entry in run] == [b"a/x", b"b/y", b"z"]
    runs = walk_runs_in_children(root, b"", WalkResult(), options, spawn=spawn)
    assert [run.entries() for run in runs] == walked


@pytest.mark.parametrize("spawn", [False, True], ids=["forked", "spawned"])
def test_walk_in_children_lets_the_caller_work_while_the_pipe_is_empty(tmp_path, spawn):
    """`while_waiting` runs while the first child has sent nothing yet (a spawned walker
    takes ~50 ms to start), until it says it is done; the runs are the same."""
    from daemon.scan.walk import WalkResult, walk_runs
    from daemon.scan.walkproc import walk_runs_in_children

    write_tree(tmp_path, {name: name for name in ["a/x", "b/y", "c"]})
    root = os.fsencode(tmp_path)
    calls = []

    def while_waiting() -> bool:
        calls.append(None)
        return len(calls) < 3  # done for now on the third call

    runs = walk_runs_in_children(root, b"", WalkResult(), spawn=spawn,
                                 while_waiting=while_waiting)
    assert [run.entries() for run in runs] == [
        list(map(tuple, run)) for run in walk_runs(root, b"", WalkResult())]
    if spawn:
        assert len(calls) >= 3


def test_the_pipe_reader_works_before_it_would_block():
    """What a frame needs that is not in the pipe yet is waited for only once
    `while_waiting` has nothing more to do; here it is what writes the bytes."""
    from daemon.scan.walkproc import _PipeReader

    read_fd, write_fd = os.pipe()
    writes = [b"ab", b"cdef"]
    calls = []

    def while_waiting() -> bool:
        calls.append(None)
        if len(calls) == 3:
            os.write(write_fd, writes.pop(0))
        return len(calls) < 3

    try:
        reader = _PipeReader(read_fd, while_waiting)
        assert reader.read(2) == b"ab" and len(calls) == 3
        os.write(write_fd, writes.pop(0))
        os.close(write_fd)
        assert reader.read(3) == b"cde" and len(calls) == 3  # readable: no call
        assert reader.read(5) == b"f" and reader.read(1) == b""
    finally:
        os.close(read_fd)


def test_keys_read_back_as_the_entries_they_spell():
    """A record per file; no path holds a NUL, so spaces, digits, newlines and non-UTF-8
    bytes in names read back as they were, and so do negative (signed 64-bit) numbers."""
    from daemon.keys import decode_keys, encode_keys, last_path

    entries = [(b"a b 1 2", 0, 1796455664182358339, -(2 ** 63), 65024),
               (b"d/\xff\n x", 2 ** 40, 1, 9, -7), (b"z", 5, 6, 7, 8)]
    keys = encode_keys(entries)
    assert decode_keys(keys) == entries and last_path(keys) == b"z"
    assert decode_keys(encode_keys(entries[:1])) == entries[:1]
    assert last_path(encode_keys(entries[:2])) == b"d/\xff\n x"
