"""`mime`: libmagic's answer from the first bytes, the built-in table where libmagic is missing."""

from __future__ import annotations

import gzip
import json
import os
import random
import shutil
import subprocess
import sys

import pytest

from daemon.meta import mime, mime_table
from tests.conftest import REPO_ROOT, cli_env
from tests.media import env_without_libmagic, image_bytes, jpeg_bytes

needs_libmagic = pytest.mark.skipif(mime.backend() != mime.LIBMAGIC, reason="libmagic not loaded")


@pytest.mark.parametrize(("name", "content", "expected", "by"), [
    ("photo.jpg", b"\xff\xd8\xff\xe0rest", "image/jpeg", "magic"),
    ("renamed.png", b"\xff\xd8\xff\xe0rest", "image/jpeg", "magic"),
    ("pic", b"\x89PNG\r\n\x1a\nrest", "image/png", "magic"),
    ("clip.mov", b"\x00\x00\x00\x14ftypqt  rest", "video/quicktime", "magic"),
    ("clip.bin", b"\x00\x00\x00\x14ftypisomrest", "video/mp4", "magic"),
    ("img.heic", b"\x00\x00\x00\x18ftypheic", "image/heic", "magic"),
    ("a.webp", b"RIFF\x00\x00\x00\x00WEBPVP8 ", "image/webp", "magic"),
    ("doc.docx", b"PK\x03\x04rest",
     "application/vnd.openxmlformats-officedocument.wordprocessingml.document", "extension"),
    ("old.doc", b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1", "application/msword", "extension"),
    ("archive", b"PK\x03\x04rest", "application/zip", "magic"),
    ("data.csv", b"a,b\n1,2\n", "text/csv", "extension"),
    ("README", "plain text, naïve".encode(), "text/plain", "magic"),
    ("blob", b"\x00\x01\x02\x03", "application/octet-stream", "default"),
    ("empty.txt", b"", "inode/x-empty", "magic"),
    ("UPPER.PDF", b"not really", "application/pdf", "extension"),
])
def test_table_by_magic_then_extension(name, content, expected, by):
    assert mime_table.detect_table(content, name) == {"mime": expected, "detected_by": by}


def test_table_sniff_allows_a_utf8_character_cut_at_the_block_end():
    head = ("x" * 4095 + "é").encode()[:4096]
    assert mime_table.sniff(head) == "text/plain"


@needs_libmagic
@pytest.mark.parametrize(("name", "content", "expected"), [
    ("photo.png", jpeg_bytes(), "image/jpeg"),  # wrong extension: the bytes win
    ("noext", image_bytes("PNG"), "image/png"),
    ("icon", image_bytes("ICO", (16, 16)), "image/vnd.microsoft.icon"),
    ("scan", image_bytes("PCX"), "image/x-pcx"),
    ("tex.tga", image_bytes("TGA"), "image/x-tga"),
    ("pic.jp2", image_bytes("JPEG2000"), "image/jp2"),
    ("notes", b"hello world\n" * 50, "text/plain"),
    ("a.gz", gzip.compress(b"x" * 100, mtime=0), "application/gzip"),
])
def test_libmagic_names_what_the_bytes_are(tmp_path, name, content, expected):
    path = tmp_path / name
    path.write_bytes(content)
    assert mime.detect(bytes(path), name) == {"mime": expected, "detected_by": "libmagic"}
    if shutil.which("file"):  # the contract: as `file --mime-type` says it
        said = subprocess.run(["file", "-b", "--mime-type", str(path)], capture_output=True,
                              text=True, check=True).stdout.strip()
        assert said == expected


@needs_libmagic
def test_what_libmagic_cannot_name_pillow_or_the_extension_may():
    dds = image_bytes("DDS", (16, 16))
    assert mime.detect_buffer(dds, "texture.bin") == {
        "mime": "image/x-dds", "detected_by": "pillow"}
    seeded = random.Random(7)
    noise = bytes(seeded.randrange(256) for _ in range(2000))  # nothing matches these bytes
    assert mime.detect_buffer(noise, "x.mp3") == {"mime": "audio/mpeg", "detected_by": "extension"}
    assert mime.detect_buffer(noise, "blob") == {
        "mime": "application/octet-stream", "detected_by": "default"}


@needs_libmagic
def test_detect_reads_at_most_the_sniff_block_and_agrees_with_detect_buffer(tmp_path):
    text = ("x" * (mime.SNIFF_BYTES - 1) + "é" + "more text" * 100).encode()
    path = tmp_path / "long.txt"
    path.write_bytes(text)
    # The block ends inside "é": still text, not binary data.
    assert mime.detect(bytes(path), "long.txt") == {"mime": "text/plain", "detected_by": "libmagic"}
    assert mime.detect_buffer(text, "long.txt") == mime.detect(bytes(path), "long.txt")
    assert mime.detect_buffer(text[: mime.SNIFF_BYTES], "x") == mime.detect_buffer(text, "x")


def test_without_libmagic_the_table_answers_and_says_why(tmp_path):
    """A real process that cannot load libmagic (as without Debian's libmagic1)."""
    (tmp_path / "pic.weird").write_bytes(jpeg_bytes())
    (tmp_path / "tex").write_bytes(image_bytes("DDS", (16, 16)))
    script = (
        "import json, sys; from daemon.meta import mime; print(json.dumps([mime.backend(),"
        " mime.unavailable_reason(), mime.detect(sys.argv[1].encode(), 'pic.weird'),"
        " mime.detect(sys.argv[2].encode(), 'tex')]))"
    )
    env = env_without_libmagic(tmp_path)
    env["PYTHONPATH"] += os.pathsep + str(REPO_ROOT)
    out = subprocess.run([sys.executable, "-c", script, str(tmp_path / "pic.weird"),
                          str(tmp_path / "tex")], capture_output=True, text=True, env=env,
                         cwd=REPO_ROOT, check=True, timeout=60).stdout
    backend, reason, jpeg, dds = json.loads(out)
    assert backend == "table"
    assert "libmagic" in reason and "apt-get install libmagic1" in reason
    assert jpeg == {"mime": "image/jpeg", "detected_by": "magic"}
    assert dds == {"mime": "image/x-dds", "detected_by": "pillow"}


def test_the_cli_says_when_mime_answers_from_the_table(env, tmp_path):
    env.library("photos", {"pic.jpg": jpeg_bytes()})
    no_magic = env_without_libmagic(tmp_path)
    no_magic["PYTHONPATH"] = no_magic["PYTHONPATH"] + os.pathsep + cli_env()["PYTHONPATH"]
    checked = env.cli("config", "check", process_env=no_magic)
    line = next(li for li in checked.stdout.splitlines() if li.startswith("enricher mime"))
    assert "built-in table" in line and "apt-get install libmagic1" in line
    env.cli("scan", process_env=no_magic)
    shown = env.json("insight", "show", str(env.tmp_path / "photos" / "pic.jpg"))
    value = next(i["value"] for i in shown["insights"] if i["kind"] == "mime")
    assert value == {"mime": "image/jpeg", "detected_by": "magic"}
