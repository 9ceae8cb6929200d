"""The one-shot CLI figures: cold scans, no-change rescans, reconcile, dupes, verify, `files
--json`, the large file.

Every round runs each baseline right before the assetd command it is compared with, so a
neighbour's load falls on both alike; a figure is the minimum over the rounds, and its ratio is
that minimum divided by the minimum of its baseline over the same rounds. Page cache is warm:
every baseline runs once untimed before the first round.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

from assetd import Assetd, write_config
from measure import BenchError, Samples, quote, run_command, shell
from tree import Tree

LIBRARY = "bench"
# (figure, baseline) in the order of a round; a cold scan starts from an empty database.
SCAN_FIGURES = ("cold_no_enrich", "rescan_no_enrich", "cold", "rescan", "reconcile", "dupes",
                "verify", "files_json", "rescan_edited", "rescan_moved",
                "rescan_edited_spread", "rescan_moved_spread")
BASELINE_OF = {"cold_no_enrich": "hash", "cold": "hash",
               "rescan_no_enrich": "walk", "rescan": "walk",
               "verify": "hash", "files_json": "walk",
               "rescan_edited": "walk", "rescan_moved": "walk",
               "rescan_edited_spread": "walk", "rescan_moved_spread": "walk"}
CHANGED_SHARE = 10  # the changed rescans: one directory in ten edited, another one in ten moved


def baseline_commands(root: Path) -> dict[str, list[str]]:
    return {
        "hash": shell(f"find {quote(root)} -type f -print0 | xargs -0 xxhsum -H2 > /dev/null"),
        "walk": shell(f"find {quote(root)} -printf '%s %T@ %i %p\\n' > /dev/null"),
    }


@dataclass
class BackendFigures:
    figures: dict[str, Samples] = field(default_factory=lambda: {f: Samples() for f in
                                                                 SCAN_FIGURES})
    dupe_groups: int = 0
    size: dict = field(default_factory=dict)
    daemon: dict = field(default_factory=dict)


def warm_up(assetd: Assetd, tree: Tree) -> None:
    """Pull the tree into the page cache and compile assetd's .pyc files; nothing timed."""
    for argv in baseline_commands(tree.root).values():
        run_command(argv)
    assetd.compile()


def scan_round(assetd: Assetd, backend, tree: Tree, workdir: Path,
               baselines: dict[str, Samples], out: BackendFigures, measure_size: bool) -> None:
    config = write_config(workdir / f"{backend.name}.toml", backend.url, {LIBRARY: tree.root})
    commands = baseline_commands(tree.root)
    n = tree.files
    cold = {"discovered": n, "created": n, "hashed": n, "errors": 0}
    unchanged = {"discovered": n, "unchanged": n, "created": 0, "updated": 0, "hashed": 0,
                 "missing": 0}
    steps = [
        ("cold_no_enrich", ["--no-enrich"], cold),
        ("rescan_no_enrich", ["--no-enrich"], unchanged),
        ("cold", [], cold),
        ("rescan", [], unchanged),
    ]
    for figure, args, expect in steps:
        baselines[BASELINE_OF[figure]].add(run_command(commands[BASELINE_OF[figure]]))
        if figure.startswith("cold"):
            backend.reset()
        out.figures[figure].add(assetd.scan(config, *args, expect=expect))
    out.figures["reconcile"].add(assetd.cli(config, "reconcile", "--json"))
    dupes = out.figures["dupes"].add(assetd.cli(config, "dupes", "--json"))
    out.dupe_groups = sum(1 for line in dupes.stdout.splitlines() if line.strip())
    # `verify` reads every file again, as xxhsum does; `files --json` lists every file, as
    # `find -printf` does (its output, a line per file, is not kept).
    baselines["hash"].add(run_command(commands["hash"]))
    verified = out.figures["verify"].add(assetd.cli(config, "verify", "--json"))
    report = json.loads(verified.stdout)
    if (report["status"], report["checked"]) != ("ok", n):
        raise BenchError(f"verify: {report['status']}, {report['checked']} of {n} files checked")
    baselines["walk"].add(run_command(commands["walk"]))
    out.figures["files_json"].add(assetd.cli(config, "files", "--json", keep_stdout=False))
    if measure_size:
        out.size = backend.size(n)
    changed_round(assetd, backend, tree, workdir, baselines, out)


def _edit_all(directories: list[Path]) -> int:
    """Append a byte to every file of these directories; how many files."""
    edited = 0
    for directory in directories:
        for path in directory.iterdir():
            with path.open("ab") as f:
                f.write(b"\n")
            edited += 1
    return edited


def _move_all(directories: list[Path], target: Path) -> int:
    """Move these directories into `target` (new); how many files they hold."""
    target.mkdir()
    moved = 0
    for directory in directories:
        moved += sum(1 for _ in directory.iterdir())
        directory.rename(target / directory.name)
    return moved


def changed_round(assetd: Assetd, backend, tree: Tree, workdir: Path,
                  baselines: dict[str, Samples], out: BackendFigures) -> None:
    """Rescans that find work: on a copy of the tree (the cached one stays as generated),
    indexed untimed, every file of a tenth of the directories edited in place (a byte
    appended), then a rescan `--no-enrich`; then another tenth moved (the directories, into a
    new one), then a rescan. First the first and the second tenth (changes in a row), then
    every tenth directory of the rest (`_spread`: a change in every page of rows). Each
    against `find -printf` of the copy."""
    copy = workdir / "changed-tree"
    if copy.exists():
        shutil.rmtree(copy)
    subprocess.run(["cp", "-a", str(tree.root), str(copy)], check=True)
    try:
        config = write_config(workdir / f"{backend.name}-changed.toml", backend.url,
                              {LIBRARY: copy})
        walk = baseline_commands(copy)["walk"]
        n = tree.files
        backend.reset()
        assetd.scan(config, "--no-enrich", expect={"discovered": n, "created": n})
        directories = sorted(path for path in copy.iterdir() if path.is_dir())
        share = max(1, len(directories) // CHANGED_SHARE)
        rest = directories[2 * share:]
        stride = max(2, len(rest) // share)
        # Two tenths in a row (the first, the second), then as many directories spread over
        # the rest (one in `stride`), which puts a change in every page of rows.
        for figure, edit, move, moving in (
                ("rescan_edited", directories[:share], "rescan_moved",
                 directories[share:2 * share]),
                ("rescan_edited_spread", rest[0::stride], "rescan_moved_spread",
                 rest[stride // 2::stride])):
            edited = _edit_all(edit)
            baselines["walk"].add(run_command(walk))
            out.figures[figure].add(assetd.scan(config, "--no-enrich", expect={
                "discovered": n, "updated": edited, "hashed": edited}))
            moved = _move_all(moving, copy / move)
            baselines["walk"].add(run_command(walk))
            out.figures[move].add(assetd.scan(config, "--no-enrich", expect={
                "discovered": n, "moved": moved, "created": 0}))
    finally:
        shutil.rmtree(copy, ignore_errors=True)


@dataclass
class LargeFile:
    xxhsum: Samples = field(default_factory=Samples)
    empty_scan: Samples = field(default_factory=Samples)
    large_scan: Samples = field(default_factory=Samples)

    def as_json(self, size_mib: int) -> dict:
        net_s = max(self.large_scan.min_s - self.empty_scan.min_s, 1e-6)
        return {
            "size_mib": size_mib,
            "xxhsum": self.xxhsum.as_json(),
            "assetd_scan_of_empty_library": self.empty_scan.as_json(),
            "assetd_scan": self.large_scan.as_json(),
            "assetd_net_s": round(net_s, 4),
            "assetd_mib_per_s": round(size_mib / net_s),
            "xxhsum_mib_per_s": round(size_mib / self.xxhsum.min_s),
            "throughput_vs_xxhsum": round(self.xxhsum.min_s / net_s, 3),
        }


def large_file_round(assetd: Assetd, backend, large: Path, workdir: Path,
                     out: LargeFile) -> None:
    """A library holding only the large file, net of a scan of an empty library (start-up,
    opening the database), against `xxhsum -H2` of the same file."""
    empty = workdir / "empty-library"
    empty.mkdir(exist_ok=True)
    config = write_config(workdir / "large.toml", backend.url,
                          {"large": large.parent, "empty": empty})
    out.xxhsum.add(run_command(["xxhsum", "-H2", str(large)]))
    backend.reset()
    assetd.scan(config, "empty", expect={"discovered": 0})  # creates the database, untimed
    out.empty_scan.add(assetd.scan(config, "empty", "--no-enrich", expect={"discovered": 0}))
    out.large_scan.add(assetd.scan(config, "large", "--no-enrich",
                                   expect={"discovered": 1, "hashed": 1}))
