"""`mime_signature`: the common media formats get libmagic's own answer without its soft magic.

Each check compares with libmagic itself on the same bytes (and with `file --mime-type` for
real files), so it fails for a class whose remembered answer is not the one libmagic gives
the file, whatever the libmagic version on the machine.
"""

from __future__ import annotations

import random
import shutil
import subprocess

import magic
import pytest

from daemon.meta import mime, mime_signature
from tests.media import clip, ffmpeg, image_bytes, jpeg_bytes, needs_ffmpeg, tone

pytestmark = pytest.mark.skipif(mime.backend() != mime.LIBMAGIC, reason="libmagic not loaded")

ALL_CLASSES = [*mime_signature.classes(), *(f"id3+{name}" for name in mime_signature.classes())]
OCTET_STREAM = "application/octet-stream"


@pytest.fixture(scope="module")
def libmagic():
    return magic.Magic(mime=True).from_buffer


def by_libmagic(answer: str) -> dict[str, str]:
    return {"mime": answer, "detected_by": "libmagic"}


@pytest.mark.parametrize("name", ALL_CLASSES)
def test_a_class_gets_libmagics_answer_whatever_follows_its_header(name, libmagic):
    header = mime_signature.reference_header(name)
    assert mime_signature.signature(header) == name
    tails = random.Random(name)
    for _ in range(12):
        head = header + tails.randbytes(tails.randrange(0, 3000))
        assert mime.detect_buffer(head, "no-extension") == by_libmagic(libmagic(head))


@pytest.mark.parametrize("name", ALL_CLASSES)
def test_a_header_cut_short_is_named_only_where_libmagic_names_it_too(name, libmagic):
    header = mime_signature.reference_header(name)
    for length in range(1, len(header)):
        head = header[:length]
        if mime_signature.signature(head) is not None:
            assert mime.detect_buffer(head, "x") == by_libmagic(libmagic(head)), length


@needs_ffmpeg
def test_files_as_encoders_write_them_get_what_file_says(tmp_path):
    """ffmpeg's and Pillow's own files (not the reference headers), each of a class here."""
    made = [
        tone(tmp_path / "song.mp3"), tone(tmp_path / "bare.mp3", "-id3v2_version", "0"),
        tone(tmp_path / "song.flac"), tone(tmp_path / "song.wav"), tone(tmp_path / "song.aiff"),
        tone(tmp_path / "song.ogg", "-c:a", "libvorbis"),
        tone(tmp_path / "song.opus", "-c:a", "libopus"), tone(tmp_path / "song.m4a"),
        tone(tmp_path / "song.aac"), tone(tmp_path / "song.mka"),
        clip(tmp_path / "clip.mp4"), clip(tmp_path / "clip.mov"), clip(tmp_path / "clip.mkv"),
        clip(tmp_path / "clip.webm"), clip(tmp_path / "clip.avi"), clip(tmp_path / "clip.flv"),
        ffmpeg(tmp_path / "clip.mpg", "-f", "lavfi", "-i", "testsrc=size=64x48:duration=1",
               "-c:v", "mpeg2video"),
        ffmpeg(tmp_path / "clip.ogv", "-f", "lavfi", "-i", "testsrc=size=64x48:duration=1",
               "-c:v", "libtheora"),
    ]
    for name, content in (("photo.jpg", jpeg_bytes()), ("pic.png", image_bytes("PNG")),
                          ("pic.gif", image_bytes("GIF")), ("pic.webp", image_bytes("WEBP")),
                          ("pic.bmp", image_bytes("BMP")), ("doc.pdf", image_bytes("PDF"))):
        (tmp_path / name).write_bytes(content)
        made.append(tmp_path / name)
    for path in made:
        with path.open("rb") as f:
            head = f.read(mime.SNIFF_BYTES)
        assert mime_signature.signature(head) is not None, path.name
        said = subprocess.run(["file", "-b", "--mime-type", str(path)], capture_output=True,
                              text=True, check=True).stdout.strip() if shutil.which("file") \
            else magic.Magic(mime=True).from_file(str(path))
        assert mime.detect(bytes(path), path.name) == by_libmagic(said), path.name


def test_random_bytes_that_start_like_a_media_frame_get_libmagics_answer(libmagic):
    """MPEG audio and ADTS frames start with a sync word one random file in ~2,000 has."""
    heads = random.Random(3)
    named = 0
    for _ in range(3000):
        head = bytes((0xFF, 0xE0 | heads.randrange(32))) + heads.randbytes(62)
        if mime_signature.signature(head) is not None:
            named += 1
            assert mime.detect_buffer(head, "x") == by_libmagic(libmagic(head)), head[:4].hex()
    assert named > 500


def test_an_id3_tag_is_skipped_as_libmagic_skips_it(tmp_path, libmagic):
    """libmagic names what follows the tag's declared size; a v2.4 footer it does not skip."""
    frame = mime_signature.reference_header("mpeg-31")
    body = random.Random(5).randbytes(400)
    for flags, footer in ((0x00, b""), (0x40, b""), (0x10, b"3DI\x04\x00\x10\x00\x00\x00\x12")):
        for size in (0, 18, 700):
            tag = b"ID3\x04\x00" + bytes((flags, 0, 0, size >> 7, size & 0x7F)) + bytes(size)
            head = tag + footer + frame + body
            expected = libmagic(head)
            (tmp_path / "tagged").write_bytes(head)
            assert mime.detect(bytes(tmp_path / "tagged"), "tagged")["mime"] == expected
            if footer:
                assert mime_signature.signature(head) is None and expected == OCTET_STREAM
            else:
                assert mime_signature.signature(head) == "id3+mpeg-31"


def test_what_no_class_names_is_asked_of_libmagic():
    """TIFF has no class: libmagic names raw camera files, TIFF inside, by their later tags."""
    head = image_bytes("TIFF")
    assert mime_signature.signature(head) is None
    assert mime.detect_buffer(head, "x") == by_libmagic("image/tiff")


def test_a_libmagic_that_does_not_know_a_class_is_asked_about_the_file(monkeypatch):
    """An older libmagic answers a class's reference header with octet-stream: the file goes
    to libmagic (then Pillow and the extension) as if there were no class."""
    monkeypatch.setitem(mime_signature._answers, "riff-webp", OCTET_STREAM)
    head = image_bytes("WEBP")
    assert mime_signature.signature(head) == "riff-webp"
    assert mime.detect_buffer(head, "pic.webp") == by_libmagic("image/webp")
