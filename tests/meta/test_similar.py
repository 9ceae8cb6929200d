"""phash and `dupes --similar`: a near-duplicate set grouped, a different picture left out."""

from __future__ import annotations

import io

import numpy as np
from PIL import Image, ImageEnhance, ImageFilter

from daemon.meta import phash, similar
from tests.media import jpeg_bytes


def picture(seed: int, size=(640, 480)) -> Image.Image:
    rng = np.random.default_rng(seed)
    coarse = Image.fromarray((rng.random((12, 16, 3)) * 255).astype("uint8"))
    return coarse.resize(size, Image.Resampling.BICUBIC).filter(ImageFilter.GaussianBlur(4))


def encoded(image: Image.Image, fmt: str = "JPEG", **options) -> bytes:
    out = io.BytesIO()
    image.save(out, fmt, **options)
    return out.getvalue()


def near_duplicate_set() -> dict[str, bytes]:
    base = picture(1)
    return {
        "original.jpg": encoded(base, quality=95),
        "small.jpg": encoded(base.resize((320, 240), Image.Resampling.LANCZOS), quality=90),
        "recompressed.jpg": encoded(base, quality=35),
        "brighter.png": encoded(ImageEnhance.Brightness(base).enhance(1.25), "PNG"),
    }


def test_phash_is_16_hex_digits_and_near_for_the_same_picture(tmp_path):
    values = {}
    for name, content in [*near_duplicate_set().items(), ("other.jpg", encoded(picture(2)))]:
        (tmp_path / name).write_bytes(content)
        values[name] = int(phash.describe(bytes(tmp_path / name))["phash"], 16)
    assert all(len(f"{v:016x}") == 16 for v in values.values())
    original = values.pop("original.jpg")
    other = values.pop("other.jpg")
    assert all(bin(original ^ v).count("1") <= 6 for v in values.values())
    assert bin(original ^ other).count("1") > 12


def test_phash_of_what_is_not_an_image_is_an_error(tmp_path):
    (tmp_path / "x").write_bytes(b"plain text")
    assert set(phash.describe(bytes(tmp_path / "x"))) == {"error"}


def test_groups_are_exact_against_all_pairs():
    rng = np.random.default_rng(5)
    hashes = rng.integers(0, 2**64, size=300, dtype=np.uint64)
    for i in range(0, 60, 2):  # plant pairs 0..6 bits apart
        hashes[i + 1] = hashes[i] ^ np.uint64(sum(1 << int(b) for b in
                                                  rng.choice(64, size=i % 7, replace=False)))
    for distance in (0, 1, 3, 6, 10):
        expected = {(i, j) for i in range(300) for j in range(i + 1, 300)
                    if bin(int(hashes[i]) ^ int(hashes[j])).count("1") <= distance}
        assert {tuple(p) for p in similar.near_pairs(hashes, distance).tolist()} == expected


def test_dupes_similar_groups_across_libraries_and_leaves_a_different_picture_out(env):
    near = near_duplicate_set()
    photos = env.library("photos", {"original.jpg": near["original.jpg"],
                                    "small.jpg": near["small.jpg"],
                                    "other.jpg": encoded(picture(2)),
                                    "tiny.jpg": jpeg_bytes()})
    env.library("backup", {"recompressed.jpg": near["recompressed.jpg"],
                           "brighter.png": near["brighter.png"],
                           "copy.jpg": near["original.jpg"]})
    env.cli("scan")
    groups = env.json_lines("dupes", "--similar")
    assert [[(f["library"], f["path"]) for f in g["files"]] for g in groups] == [[
        ("backup", "brighter.png"), ("backup", "copy.jpg"), ("backup", "recompressed.jpg"),
        ("photos", "original.jpg"), ("photos", "small.jpg"),
    ]]
    assert all(len(f["phash"]) == 16 for f in groups[0]["files"])
    assert env.json_lines("dupes", "--similar", "--library", "photos")[0]["files"] == [
        f for f in groups[0]["files"] if f["library"] == "photos"]
    original = next(f for f in groups[0]["files"] if f["path"] == "original.jpg")
    same_phash = [f for f in groups[0]["files"] if f["phash"] == original["phash"]]
    assert len(same_phash) < 5  # the brightened copy differs in a few bits
    assert env.json_lines("dupes", "--similar", "--distance", "0") == [{"files": same_phash}]
    assert env.cli("dupes", "--similar", "--distance", "65", check=2).stderr.count("\n") == 1
    assert "similar images" in env.cli("dupes", "--similar").stdout
    assert photos.exists()
