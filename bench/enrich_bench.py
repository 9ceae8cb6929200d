"""Enrich throughput: `assetd scan` over N JPEG photos, with the built-in enrichers and without.

    .venv/bin/python bench/enrich_bench.py --files 10000 [--size 1024x768] [--workdir DIR]

The photos are made once (smooth random pictures, quality 90, with EXIF) and kept in the work
directory; each run starts from an empty database. files/s for the enrich phase is N divided by
(scan with enrichers - scan --no-enrich). The heavy built-ins (image, phash) run in one worker
process per core (at most 2).
"""

from __future__ import annotations

import argparse
import io
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

REPO = Path(__file__).resolve().parent.parent


def make_photos(root: Path, count: int, size: tuple[int, int]) -> None:
    root.mkdir(parents=True, exist_ok=True)
    if len(list(root.glob("*.jpg"))) >= count:
        return
    rng = np.random.default_rng(0)
    exif = Image.Exif()
    exif[0x010F], exif[0x0110] = "BENCH", "Camera"
    for index in range(count):
        coarse = Image.fromarray((rng.random((size[1] // 64, size[0] // 64, 3)) * 255)
                                 .astype("uint8"))
        out = io.BytesIO()
        coarse.resize(size, Image.Resampling.BILINEAR).save(out, "JPEG", quality=90,
                                                            exif=exif.tobytes())
        (root / f"p{index:06d}.jpg").write_bytes(out.getvalue())


def timed_scan(workdir: Path, root: Path, *extra: str) -> float:
    database = workdir / "bench.db"
    for suffix in ("", "-wal", "-shm"):
        Path(f"{database}{suffix}").unlink(missing_ok=True)
    config = workdir / "bench.toml"
    config.write_text(f'[daemon]\ndatabase = "sqlite:///{database}"\n\n'
                      f'[[library]]\nname = "photos"\npath = "{root}"\n')
    started = time.perf_counter()
    subprocess.run([sys.executable, "-m", "daemon", "--config", str(config), "scan", *extra],
                   cwd=REPO, check=True, stdout=subprocess.DEVNULL)
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--files", type=int, default=10_000)
    parser.add_argument("--size", default="1024x768")
    parser.add_argument("--workdir", default=os.path.join(tempfile.gettempdir(), "assetd-enrich"))
    args = parser.parse_args()
    width, height = (int(n) for n in args.size.split("x"))
    workdir = Path(args.workdir)
    root = workdir / f"photos-{args.files}-{args.size}"
    make_photos(root, args.files, (width, height))
    bare = timed_scan(workdir, root, "--no-enrich")
    full = timed_scan(workdir, root)
    enrich_s = full - bare
    print(f"{args.files} JPEGs {args.size}: scan --no-enrich {bare:.1f} s, scan {full:.1f} s,"
          f" enrich phase {enrich_s:.1f} s = {args.files / enrich_s:.0f} files/s"
          f" (mime, image, phash; audio/video do not apply)")


if __name__ == "__main__":
    main()
