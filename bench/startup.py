"""CLI start-up: how long `assetd --version`, `--help`, `status` and `files` take, against
`python3 -c pass` (the bare interpreter the builds run on) in the same run.

    .venv/bin/python bench/startup.py                      # this checkout's assetd
    .venv/bin/python bench/startup.py --assetd ../main/.venv/bin/assetd --assetd .venv/bin/assetd

With several builds, each round runs every command of every build (hyperfine, `--runs` each),
the builds' order alternating from round to round, so the builds are measured interleaved. A
figure is the median of its runs divided by the baseline's median in the same round; the table
shows the minimum over rounds (the least disturbed) and that round's medians in ms.
`--instructions` adds the instructions each command executes (valgrind's callgrind, one run
each) as a ratio to the baseline's: slow, but the same on a busy machine as on an idle one.

Each build runs with its bytecode cached (`compileall` first, PYTHONDONTWRITEBYTECODE unset), as
an installed package does: otherwise every run would compile every module it imports. Needs
`hyperfine` on PATH.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

SMALL_INDEX_FILES = 100


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--assetd", action="append", metavar="PATH",
                        help="a build's assetd (repeatable; default: the one next to this Python)")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--runs", type=int, default=30, help="hyperfine runs per command a round")
    parser.add_argument("--instructions", action="store_true",
                        help="also count instructions (needs valgrind)")
    parser.add_argument("--json", metavar="OUT", help="save every round's figures")
    args = parser.parse_args()
    if shutil.which("hyperfine") is None:
        print("startup.py: needs hyperfine on PATH", file=sys.stderr)
        return 2
    builds = [str(Path(p).absolute()) for p in args.assetd
              or [str(Path(sys.executable).parent / "assetd")]]
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    # The interpreter itself, not a venv's or pyenv's wrapper around it.
    baseline = f"{os.path.realpath(Path(builds[0]).parent / 'python')} -c pass"
    with tempfile.TemporaryDirectory(prefix="assetd-startup-") as work:
        commands = {build: _commands(build, Path(work) / f"build{i}", env)
                    for i, build in enumerate(builds)}
        rounds = [_round(baseline, commands, builds if r % 2 == 0 else builds[::-1],
                         args.runs, env) for r in range(args.rounds)]
        instructions = _instructions(baseline, commands, env) if args.instructions else None
    _print_table(baseline, builds, rounds, instructions)
    if args.json:
        Path(args.json).write_text(json.dumps({"baseline": baseline, "builds": builds,
                                               "rounds": rounds, "instructions": instructions},
                                              indent=1))
    return 0


def _commands(assetd: str, workdir: Path, env: dict[str, str]) -> dict[str, str]:
    """The measured command lines of one build, with its own empty and small index."""
    python = str(Path(assetd).parent / "python")
    package = subprocess.run([python, "-c", "import daemon, os; print(os.path.dirname("
                              "daemon.__file__))"], capture_output=True, text=True, check=True,
                             env=env).stdout.strip()
    subprocess.run([python, "-m", "compileall", "-q", package], check=True, env=env)
    library = workdir / "library"
    library.mkdir(parents=True)
    for i in range(SMALL_INDEX_FILES):
        (library / f"f{i:03d}.txt").write_text(f"{i}\n")
    empty, small = workdir / "empty.db", workdir / "small.db"
    config = workdir / "assetd.toml"
    config.write_text(f'[daemon]\ndatabase = "sqlite:///{small}"\n\n'
                      f'[[library]]\nname = "files"\npath = "{library}"\n')
    subprocess.run([assetd, "--db", f"sqlite:///{empty}", "scan"], check=True, env=env,
                   capture_output=True)
    subprocess.run([assetd, "--config", str(config), "scan", "--no-enrich"], check=True,
                   env=env, capture_output=True)
    return {
        "--version": f"{assetd} --version",
        "--help": f"{assetd} --help",
        "status (empty index)": f"{assetd} --db sqlite:///{empty} status",
        f"files ({SMALL_INDEX_FILES} files)": f"{assetd} --config {config} files",
    }


def _round(baseline: str, commands: dict[str, dict[str, str]], order: list[str], runs: int,
           env: dict[str, str]) -> dict[str, dict[str, float]]:
    """{build: {figure: median seconds}} of one hyperfine run, the baseline under ''."""
    lines = [baseline] + [line for build in order for line in commands[build].values()]
    with tempfile.NamedTemporaryFile(suffix=".json") as out:
        subprocess.run(["hyperfine", "-N", "--warmup", "3", "--runs", str(runs), "--style",
                        "none", "--export-json", out.name, *lines], check=True, env=env,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        results = json.loads(Path(out.name).read_text())["results"]
    medians = {r["command"]: r["median"] for r in results}
    figures = {build: {name: medians[line] for name, line in commands[build].items()}
               for build in order}
    return {"": {"baseline": medians[baseline]}, **figures}


def _instructions(baseline: str, commands: dict[str, dict[str, str]],
                  env: dict[str, str]) -> dict[str, dict[str, int]]:
    """Instructions executed, counted by callgrind: {build: {figure: count}}, baseline ''."""

    def count(line: str) -> int:
        proc = subprocess.run(["valgrind", "--tool=callgrind", "--callgrind-out-file=/dev/null",
                               *line.split()], capture_output=True, text=True, env=env,
                              check=True)
        return int(proc.stderr.rsplit("Collected : ", 1)[1].split()[0])

    return {"": {"baseline": count(baseline)},
            **{build: {name: count(line) for name, line in lines.items()}
               for build, lines in commands.items()}}


def _print_table(baseline: str, builds: list[str], rounds: list[dict],
                 instructions: dict | None) -> None:
    names = list(next(iter(rounds[0][b] for b in builds)))
    print(f"x `{baseline}`: time (minimum over {len(rounds)} rounds, and that round's medians)"
          + ("; instructions" if instructions else ""))
    for build in builds:
        print(build)
        for name in names:
            ratio, seconds, base = min((r[build][name] / r[""]["baseline"], r[build][name],
                                        r[""]["baseline"]) for r in rounds)
            line = (f"  {name:22} x{ratio:5.2f}  {seconds * 1000:6.1f} ms "
                    f"(baseline {base * 1000:5.1f} ms)")
            if instructions:
                line += f"   x{instructions[build][name] / instructions['']['baseline']:5.2f}"
            print(line)


if __name__ == "__main__":
    sys.exit(main())
