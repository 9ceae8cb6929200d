"""`image`: any format Pillow opens, by content; EXIF date, camera, GPS; broken files; bombs."""

from __future__ import annotations

import io
import struct
import zlib

import pytest
from PIL import Image

from daemon.meta import image
from tests.media import image_bytes, jpeg_bytes


def test_size_format_exif_and_gps(tmp_path):
    path = tmp_path / "a.jpg"
    path.write_bytes(jpeg_bytes(exif={0x9003: "2021:06:01 12:34:56", 0x0110: "X100V",
                                      0x010F: "FUJIFILM"}, gps=(-33.8568, 151.2153)))
    assert image.describe(bytes(path)) == {
        "format": "JPEG", "width": 64, "height": 48, "datetime_original": "2021-06-01T12:34:56",
        "camera_make": "FUJIFILM", "camera_model": "X100V",
        "latitude": pytest.approx(-33.8568, abs=1e-6),
        "longitude": pytest.approx(151.2153, abs=1e-6),
    }


def test_west_longitude_is_negative(tmp_path):
    path = tmp_path / "b.jpg"
    path.write_bytes(jpeg_bytes(gps=(40.6892, -74.0445)))
    value = image.describe(bytes(path))
    assert value["latitude"] == pytest.approx(40.6892, abs=1e-6)
    assert value["longitude"] == pytest.approx(-74.0445, abs=1e-6)


@pytest.mark.parametrize(("name", "fmt", "size"), [
    ("no_extension", "PNG", (5, 4)),
    ("wrong.txt", "GIF", (6, 2)),
    ("texture.dds", "DDS", (16, 8)),
    ("icon.ico", "ICO", (16, 16)),
    ("old.pcx", "PCX", (7, 3)),
    ("map.tga", "TGA", (9, 5)),
    ("photo.jp2", "JPEG2000", (20, 10)),
    ("raw.sgi", "SGI", (4, 4)),
    ("picture.qoi", "QOI", (3, 3)),
])
def test_every_format_pillow_opens_whatever_the_name(tmp_path, name, fmt, size):
    path = tmp_path / name
    path.write_bytes(image_bytes(fmt, size))
    value = image.describe(bytes(path))
    assert (value["width"], value["height"]) == size and "error" not in value
    assert value["format"] in {fmt, "JPEG2000"}


def test_tiny_image_without_exif(tmp_path):
    path = tmp_path / "dot.png"
    Image.new("L", (1, 1)).save(path)
    assert image.describe(bytes(path)) == {"format": "PNG", "width": 1, "height": 1}


def test_truncated_png_keeps_its_size_and_has_an_error(tmp_path):
    out = io.BytesIO()
    Image.effect_noise((300, 200), 40).save(out, "PNG")
    path = tmp_path / "cut.png"
    path.write_bytes(out.getvalue()[: len(out.getvalue()) // 2])
    value = image.describe(bytes(path))
    assert value["width"] == 300 and value["height"] == 200 and value["format"] == "PNG"
    assert "error" in value and str(tmp_path) not in value["error"]


def test_truncated_jpeg_has_an_error(tmp_path):
    path = tmp_path / "cut.jpg"
    path.write_bytes(jpeg_bytes(size=(400, 300))[:600])
    assert "error" in image.describe(bytes(path))


@pytest.mark.parametrize("content", [b"not an image at all", b"\x89PNG\r\n\x1a\n" + b"\x00" * 20])
def test_what_pillow_cannot_identify_is_an_error_value(tmp_path, content):
    path = tmp_path / "bad.png"
    path.write_bytes(content)
    value = image.describe(bytes(path))
    assert set(value) == {"error"} and str(tmp_path) not in value["error"]


def png_bomb(width: int, height: int) -> bytes:
    """A valid PNG header announcing width×height 1-bit pixels, with a tiny IDAT."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return (struct.pack(">I", len(data)) + kind + data
                + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF))
    header = struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header)
            + chunk(b"IDAT", zlib.compress(b"\x00" * 1000)) + chunk(b"IEND", b""))


def test_a_decompression_bomb_gets_its_size_and_is_never_decoded(tmp_path):
    path = tmp_path / "bomb.png"
    path.write_bytes(png_bomb(100_000, 100_000))  # 10 gigapixels, Pillow's open refuses it
    value = image.describe(bytes(path))
    assert (value["format"], value["width"], value["height"]) == ("PNG", 100_000, 100_000)
    assert "DecompressionBomb" in value["error"] and "not decoded" in value["error"]
