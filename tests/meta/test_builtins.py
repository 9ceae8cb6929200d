"""The built-in enrichers on real files: `mime` and `image`."""

from __future__ import annotations

import io

import pytest
from PIL import Image

from daemon.meta import image, mime


def jpeg_bytes(exif: dict[int, str] | None = None, size=(64, 48)) -> bytes:
    out = io.BytesIO()
    picture = Image.new("RGB", size, "blue")
    saved_exif = Image.Exif()
    for tag, value in (exif or {}).items():
        if tag == 0x9003:
            saved_exif.get_ifd(0x8769)[tag] = value
        else:
            saved_exif[tag] = value
    picture.save(out, "JPEG", exif=saved_exif.tobytes())
    return out.getvalue()


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
def test_mime_by_magic_then_extension(tmp_path, name, content, expected, by):
    path = tmp_path / name
    path.write_bytes(content)
    assert mime.detect(bytes(path), name) == {"mime": expected, "detected_by": by}


def test_mime_sniff_allows_a_utf8_character_cut_at_the_block_end():
    head = ("x" * (mime.SNIFF_BYTES - 1) + "é").encode()[: mime.SNIFF_BYTES]
    assert mime.sniff(head) == "text/plain"


def test_image_size_format_and_exif(tmp_path):
    path = tmp_path / "a.jpg"
    path.write_bytes(jpeg_bytes({0x9003: "2021:06:01 12:34:56", 0x0110: "X100V",
                                 0x010F: "FUJIFILM"}))
    assert image.describe(bytes(path)) == {
        "format": "JPEG", "width": 64, "height": 48, "datetime_original": "2021-06-01T12:34:56",
        "camera_make": "FUJIFILM", "camera_model": "X100V",
    }


def test_image_without_exif_and_tiny(tmp_path):
    path = tmp_path / "dot.png"
    Image.new("L", (1, 1)).save(path)
    assert image.describe(bytes(path)) == {"format": "PNG", "width": 1, "height": 1}


@pytest.mark.parametrize("content", [
    b"not an image at all",
    b"\x89PNG\r\n\x1a\n" + b"\x00" * 20,
])
def test_corrupt_image_is_an_error_value(tmp_path, content):
    path = tmp_path / "bad.png"
    path.write_bytes(content)
    value = image.describe(bytes(path))
    assert set(value) == {"error"} and str(tmp_path) not in value["error"]


def test_truncated_jpeg_is_an_error_value(tmp_path):
    path = tmp_path / "cut.jpg"
    path.write_bytes(jpeg_bytes(size=(400, 300))[:600])
    assert "error" in image.describe(bytes(path))
