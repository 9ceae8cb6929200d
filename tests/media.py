"""Media the tests make themselves: images with Pillow (EXIF, GPS), audio and video with ffmpeg."""

from __future__ import annotations

import io
import os
import shutil
import subprocess
import sys
from fractions import Fraction
from pathlib import Path

import pytest
from PIL import Image

EXIF_IFD, GPS_IFD = 0x8769, 0x8825
needs_ffmpeg = pytest.mark.skipif(shutil.which("ffmpeg") is None,
                                  reason="ffmpeg not installed (.ci/run installs it)")


def _dms(degrees: float) -> tuple[Fraction, Fraction, Fraction]:
    whole = int(degrees)
    minutes = int((degrees - whole) * 60)
    seconds = Fraction(round((degrees - whole - minutes / 60) * 3600 * 1000), 1000)
    return Fraction(whole), Fraction(minutes), seconds


def jpeg_bytes(size=(64, 48), color="blue", exif: dict[int, str] | None = None,
               gps: tuple[float, float] | None = None, quality: int = 90,
               picture: Image.Image | None = None) -> bytes:
    out = io.BytesIO()
    picture = picture or Image.new("RGB", size, color)
    saved = Image.Exif()
    for tag, value in (exif or {}).items():
        if tag == 0x9003:
            saved.get_ifd(EXIF_IFD)[tag] = value
        else:
            saved[tag] = value
    if gps is not None:
        latitude, longitude = gps
        saved.get_ifd(GPS_IFD).update({
            1: "S" if latitude < 0 else "N", 2: _dms(abs(latitude)),
            3: "W" if longitude < 0 else "E", 4: _dms(abs(longitude)),
        })
    picture.save(out, "JPEG", exif=saved.tobytes(), quality=quality)
    return out.getvalue()


def image_bytes(fmt: str, size=(40, 30), mode="RGB") -> bytes:
    out = io.BytesIO()
    Image.new(mode, size, "red").save(out, fmt)
    return out.getvalue()


def ffmpeg(out: Path, *args: str) -> Path:
    subprocess.run(["ffmpeg", "-v", "error", "-y", *args, str(out)], check=True, timeout=60)
    return out


def tone(out: Path, *extra: str, seconds: float = 1.0) -> Path:
    return ffmpeg(out, "-f", "lavfi", "-i", f"sine=frequency=440:duration={seconds}", *extra)


def clip(out: Path, size: str = "160x120", seconds: float = 1.0) -> Path:
    return ffmpeg(out, "-f", "lavfi", "-i", f"testsrc=size={size}:rate=10:duration={seconds}",
                  "-pix_fmt", "yuv420p")


_NO_LIBMAGIC = '''
import ctypes
_CDLL = ctypes.CDLL
class _NoLibmagic(_CDLL):
    """libmagic will not load, as on a machine without the libmagic1 package."""
    def __init__(self, name, *args, **kwargs):
        if name and "magic" in str(name):
            raise OSError(f"{name}: cannot open shared object file: No such file or directory")
        super().__init__(name, *args, **kwargs)
ctypes.CDLL = _NoLibmagic
'''


def env_without_libmagic(tmp_path: Path) -> dict[str, str]:
    """An environment whose Python processes cannot load libmagic (a sitecustomize hook)."""
    hook = tmp_path / "no-libmagic"
    hook.mkdir(exist_ok=True)
    (hook / "sitecustomize.py").write_text(_NO_LIBMAGIC)
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(hook), env.get("PYTHONPATH")]))
    return env


def env_without(tmp_path: Path, program: str) -> dict[str, str]:
    """An environment whose PATH has the Python in use but not `program`."""
    bin_dir = tmp_path / f"path-without-{program}"
    bin_dir.mkdir(exist_ok=True)
    env = dict(os.environ)
    kept = [d for d in env.get("PATH", "").split(os.pathsep)
            if d and not os.path.exists(os.path.join(d, program))]
    env["PATH"] = os.pathsep.join([os.path.dirname(sys.executable), *kept])
    return env
