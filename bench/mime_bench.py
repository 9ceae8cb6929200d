"""`mime` on common media formats: a cold scan of a media-like tree, and the cost a file by format.

    .venv/bin/python bench/mime_bench.py [--files 100000] [--rounds 3] [--assetd PATH] [--json OUT]

The main bench's tree is random bytes, libmagic's worst case: it runs every soft-magic rule and
names nothing (~200 µs a file). A photo, music or video library is mostly files whose first
bytes are a known format's signature. This tree has `run.py`'s shape and sizes (D directories,
64-2,000 bytes a file, seeded), but every file starts with the header of one of the common
formats below, in turn (`mime_signature.reference_header`), and random bytes follow. Images,
audio and video enrichers would decode or probe each file, so the scans here run `mime` alone:

- `cold scan --no-enrich` and `cold scan, mime only` against `find | xargs xxhsum -H2` of the
  same tree in the same round (the minimum of the rounds each, as in `run.py`), peak RSS;
- `mime a file`: (mime only - no-enrich) / files, the enricher's own cost in the scan;
- per format, and for 1,000 random bytes, in this process: µs for libmagic
  (`magic.Magic(mime=True).from_buffer`) and for `mime.detect_buffer` on the same bytes, and
  their ratio.

`--assetd PATH` measures another build's scans with the same tree (its per-format figures are
this checkout's). The tree is kept in the cache directory (`media-seed1-1000x100/`).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # daemon.meta, for the headers

from assetd import Assetd, write_config
from measure import BenchError, Samples, quote, run_command, shell
from tree import MAX_SIZE, MIN_SIZE, default_cache_dir

from daemon.meta import mime, mime_signature

FORMATS = ("jpeg", "png", "gif89a", "riff-webp", "id3+mpeg-31", "mpeg-31", "flac", "ftyp-m4a",
           "riff-wave", "ogg-vorbis", "ogg-opus", "ftyp-isom", "ftyp-qt", "ebml-matroska",
           "ebml-webm", "riff-avi", "pdf")
ENRICHERS_OFF = ("image", "phash", "audio", "video")
RANDOM = "random bytes"  # the per-format figures' last row: what no rule names


def ensure_media_tree(cache_dir: Path, seed: int, dirs: int, per_dir: int) -> tuple[Path, int]:
    root = cache_dir / f"media-seed{seed}-{dirs}x{per_dir}"
    manifest = root.with_name(root.name + ".json")
    if manifest.is_file() and root.is_dir():
        return root, json.loads(manifest.read_text())["files"]
    partial = root.with_name(root.name + ".partial")
    shutil.rmtree(partial, ignore_errors=True)
    rng = random.Random(seed)
    headers = [mime_signature.reference_header(name) for name in FORMATS]
    for d in range(dirs):
        directory = partial / f"d{d:04d}"
        directory.mkdir(parents=True)
        for f in range(per_dir):
            header = headers[(d * per_dir + f) % len(headers)]
            tail = rng.randbytes(max(0, rng.randint(MIN_SIZE, MAX_SIZE) - len(header)))
            (directory / f"f{f:04d}.dat").write_bytes(header + tail)
    shutil.rmtree(root, ignore_errors=True)
    partial.rename(root)
    manifest.write_text(json.dumps({"files": dirs * per_dir, "formats": FORMATS}))
    return root, dirs * per_dir


def per_format_us(repeat: int) -> dict[str, dict[str, float]]:
    import magic

    libmagic = magic.Magic(mime=True).from_buffer
    tails = random.Random(0)
    for _ in range(mime.SPLIT_AFTER_CALLS):  # past the calls before libmagic's database splits
        mime.detect_buffer(tails.randbytes(100), "x")
    figures = {}
    for name in (*FORMATS, RANDOM):
        head = (b"" if name == RANDOM else mime_signature.reference_header(name)) \
            + tails.randbytes(1000)
        mime.detect_buffer(head, "x")  # the class's answer, asked once a process
        timed = {}
        for label, call, call_args in (("libmagic_us", libmagic, (head,)),
                                       ("detect_us", mime.detect_buffer, (head, "x"))):
            started = time.perf_counter()
            for _ in range(repeat):
                call(*call_args)
            timed[label] = round((time.perf_counter() - started) / repeat * 1e6, 1)
        timed["ratio"] = round(timed["detect_us"] / timed["libmagic_us"], 3)
        figures[name] = timed
    return figures


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--files", type=int, default=100_000)
    parser.add_argument("--dirs", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--assetd", help="the build to measure (default: the one beside this "
                        "Python)")
    parser.add_argument("--cache-dir", type=Path, default=default_cache_dir())
    parser.add_argument("--repeat", type=int, default=2000, help="per-format calls (default "
                        "2000)")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args(argv)
    if not shutil.which("xxhsum") or mime.backend() != mime.LIBMAGIC:
        print("mime_bench: needs xxhsum (Debian: xxhash) and libmagic (libmagic1)",
              file=sys.stderr)
        return 2
    assetd = Assetd(args.assetd)
    root, files = ensure_media_tree(args.cache_dir, args.seed, args.dirs,
                                    args.files // args.dirs)
    hash_tree = shell(f"find {quote(root)} -type f -print0 | xargs -0 xxhsum -H2 > /dev/null")
    samples = {name: Samples() for name in ("xxhsum", "cold_no_enrich", "cold_mime_only")}
    cold = {"discovered": files, "created": files, "hashed": files, "errors": 0}
    with tempfile.TemporaryDirectory(prefix="assetd-mime-") as workdir:
        database = Path(workdir) / "bench.db"
        config = write_config(Path(workdir) / "bench.toml", f"sqlite:///{database}",
                              {"media": root}, enrichers_off=ENRICHERS_OFF)
        run_command(hash_tree)  # into the page cache
        assetd.compile()
        try:
            for _ in range(args.rounds):
                for figure, extra in (("cold_no_enrich", ["--no-enrich"]),
                                      ("cold_mime_only", [])):
                    samples["xxhsum"].add(run_command(hash_tree))
                    for suffix in ("", "-wal", "-shm"):
                        Path(f"{database}{suffix}").unlink(missing_ok=True)
                    samples[figure].add(assetd.scan(config, *extra, expect=cold))
        except BenchError as exc:
            print(f"mime_bench: FAILED: {exc}", file=sys.stderr)
            return 1
    baseline = samples["xxhsum"].min_s
    result = {
        "assetd": assetd.describe(), "files": files, "tree": str(root), "rounds": args.rounds,
        "machine": {"cpus": os.cpu_count(), "load": os.getloadavg()},
        "figures": {name: {**s.as_json(), "ratio_to_xxhsum": round(s.min_s / baseline, 3)}
                    for name, s in samples.items()},
        "mime_us_a_file": round((samples["cold_mime_only"].min_s
                                 - samples["cold_no_enrich"].min_s) / files * 1e6, 1),
        "per_format": per_format_us(args.repeat),
    }
    lines = [f"{files:,} media-like files, {args.rounds} rounds, xxhsum {baseline:.3f} s",
             "| figure | s | x xxhsum | peak RSS MiB |", "| --- | --- | --- | --- |"]
    for name in ("cold_no_enrich", "cold_mime_only"):
        figure = result["figures"][name]
        lines.append(f"| {name} | {figure['min_s']:.3f} | {figure['ratio_to_xxhsum']:.2f} | "
                     f"{figure['peak_rss_mib']} |")
    lines += [f"mime a file in the scan: {result['mime_us_a_file']} µs", "",
              "| format | libmagic µs | detect µs | ratio |", "| --- | --- | --- | --- |"]
    lines += [f"| {name} | {f['libmagic_us']} | {f['detect_us']} | {f['ratio']} |"
              for name, f in result["per_format"].items()]
    print("\n".join(lines))
    if args.json:
        args.json.write_text(json.dumps(result, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
