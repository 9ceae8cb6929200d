import os
import shutil
import subprocess

import pytest

from daemon.scan.hash import CHUNK_BYTES, TornReadError, hash_file

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
