import os
import shutil
import subprocess

import pytest

from daemon.scan.hash import (
    CHUNK_BYTES,
    FAILED,
    HASHED,
    VANISHED,
    TornReadError,
    as_hashed,
    hash_batch,
    hash_file,
    hash_file_head,
)

needs_xxhsum = pytest.mark.skipif(shutil.which("xxhsum") is None, reason="xxhsum not installed")


def xxhsum_h2(path) -> str:
    out = subprocess.run(["xxhsum", "-H2", str(path)], capture_output=True, text=True, check=True)
    return out.stdout.split()[0]


@needs_xxhsum
@pytest.mark.parametrize("size", [0, 1, 4096, CHUNK_BYTES, CHUNK_BYTES + 17, 3 * CHUNK_BYTES])
def test_hash_equals_xxhsum_h2(tmp_path, size):
    path = tmp_path / "f"
    path.write_bytes(os.urandom(size))
    hashed = hash_file(os.fsencode(path))
    assert hashed.content_hash == "xxh128:" + xxhsum_h2(path)
    assert hashed.size == size


def test_torn_read_is_detected(tmp_path):
    path = tmp_path / "growing"
    path.write_bytes(b"a" * (3 * CHUNK_BYTES))

    def writer_appends(_n):
        with open(path, "ab") as f:
            f.write(b"more")

    with pytest.raises(TornReadError):
        hash_file(os.fsencode(path), on_bytes=writer_appends)


def test_fifo_is_refused_without_blocking(tmp_path):
    os.mkfifo(tmp_path / "pipe")
    with pytest.raises(OSError, match="not a regular file"):
        hash_file(os.fsencode(tmp_path / "pipe"))


def test_symlink_not_followed_unless_asked(tmp_path):
    (tmp_path / "target").write_bytes(b"x")
    os.symlink(tmp_path / "target", tmp_path / "link")
    with pytest.raises(OSError):
        hash_file(os.fsencode(tmp_path / "link"))
    assert hash_file(os.fsencode(tmp_path / "link"), follow_symlinks=True).size == 1


def test_a_worker_batch_says_what_hash_file_says(tmp_path):
    """The batch's inlined small-file path and its fallback agree with `hash_file` on
    every kind of path: small, empty, bigger than the buffer, a FIFO (refused without
    blocking), a symlink (not followed), and one that is not there."""
    (tmp_path / "small").write_bytes(os.urandom(1500))
    (tmp_path / "empty").write_bytes(b"")
    (tmp_path / "big").write_bytes(os.urandom(CHUNK_BYTES + 5))
    os.mkfifo(tmp_path / "pipe")
    os.symlink(tmp_path / "small", tmp_path / "link")
    names = [b"small", b"empty", b"big", b"pipe", b"link", b"gone"]
    results = hash_batch(os.fsencode(tmp_path), names, False)
    assert [outcome for outcome, _, _ in results] == [
        HASHED, HASHED, HASHED, FAILED, FAILED, VANISHED]
    for name, (_, value, sniffed) in zip(names[:3], results, strict=False):
        assert type(value) is tuple  # pickled plain: no Python call per file
        assert as_hashed(value) == hash_file(os.fsencode(tmp_path / os.fsdecode(name)))
        assert sniffed is None
    assert "not a regular file" in results[3][1]


def test_a_worker_batch_sniffs_the_bytes_it_read(tmp_path):
    (tmp_path / "a").write_bytes(b"0123456789")
    (tmp_path / "b").write_bytes(os.urandom(CHUNK_BYTES + 5))
    seen = []

    def sniff(head: bytes, path_text: str) -> str:
        seen.append(path_text)
        return head.decode("latin-1")

    results = hash_batch(os.fsencode(tmp_path), [b"a", b"b"], False, sniff, 4)
    assert [sniffed for _, _, sniffed in results] == [
        "0123", hash_file_head(os.fsencode(tmp_path / "b"), head_bytes=4)[1].decode("latin-1")]
    assert seen == ["a", "b"]
