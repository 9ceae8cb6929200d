"""How the bench calls the assetd under test: which executable, which config, which checkout."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from measure import BenchError, Run, run_command

REPO_ROOT = Path(__file__).resolve().parent.parent


def toml_string(text: str | Path) -> str:
    return json.dumps(str(text))  # a JSON string is a valid TOML basic string


class Assetd:
    """One assetd build: `--assetd PATH`, else the `assetd` next to this interpreter."""

    def __init__(self, executable: str | None):
        if executable:
            path = Path(executable).expanduser().absolute()
            if not os.access(path, os.X_OK):
                raise BenchError(f"--assetd {executable}: not an executable file")
            self.argv = [str(path)]
        elif (Path(sys.executable).parent / "assetd").is_file():
            self.argv = [str(Path(sys.executable).parent / "assetd")]
        else:
            self.argv = [sys.executable, "-m", "daemon"]
        # Bytecode cached, as an installed package has it (`compile`): with
        # PYTHONDONTWRITEBYTECODE set, every run compiled every module it imported, ~0.1 s of
        # each scan that no installed assetd pays.
        self.env = {key: value for key, value in os.environ.items()
                    if key not in ("ASSETD_CONFIG", "NOTIFY_SOCKET", "WATCHDOG_USEC",
                                   "PYTHONDONTWRITEBYTECODE")}
        if self.argv[1:] == ["-m", "daemon"]:
            self.env["PYTHONPATH"] = str(REPO_ROOT)

    def describe(self) -> dict:
        """The executable, its --version, and the git commit of the checkout it was built from."""
        info = {"argv": self.argv}
        version = run_command([*self.argv, "--version"], env=self.env, check=False)
        info["version"] = version.stdout.strip()
        checkout = self._checkout()
        if checkout is not None:
            git = ["git", "-C", str(checkout)]
            head = subprocess.run([*git, "rev-parse", "--short", "HEAD"],
                                  capture_output=True, text=True)
            branch = subprocess.run([*git, "rev-parse", "--abbrev-ref", "HEAD"],
                                    capture_output=True, text=True)
            dirty = subprocess.run([*git, "status", "--porcelain", "--untracked-files=no"],
                                   capture_output=True, text=True)
            info.update(checkout=str(checkout), commit=head.stdout.strip(),
                        branch=branch.stdout.strip(), dirty=bool(dirty.stdout.strip()))
        return info

    def _checkout(self) -> Path | None:
        """`CHECKOUT/.venv/bin/assetd` (or `python -m daemon` here) → CHECKOUT, if a git tree."""
        if self.argv[1:] == ["-m", "daemon"]:
            candidate = REPO_ROOT
        else:
            candidate = Path(self.argv[0]).parent.parent.parent
        return candidate if (candidate / ".git").exists() else None

    def compile(self) -> None:
        """Compile the build's package (its .pyc files; PYTHONPYCACHEPREFIX is honoured)."""
        python = (sys.executable if self.argv[1:] == ["-m", "daemon"]
                  else str(Path(self.argv[0]).parent / "python"))
        package = run_command([python, "-c", "import daemon, os; print(os.path.dirname("
                               "daemon.__file__))"], env=self.env).stdout.strip()
        run_command([python, "-m", "compileall", "-q", package], env=self.env)

    def cli(self, config: Path, *args: str, check: bool = True,
            keep_stdout: bool = True) -> Run:
        return run_command([*self.argv, "--config", str(config), *args], env=self.env,
                           check=check, sample_tree=True, keep_stdout=keep_stdout)

    def json(self, config: Path, *args: str) -> tuple[Run, object]:
        run = self.cli(config, *args)
        try:
            return run, json.loads(run.stdout)
        except json.JSONDecodeError as exc:
            raise BenchError(f"assetd {' '.join(args)}: output is not JSON: {exc}") from None

    def scan(self, config: Path, *args: str, expect: dict[str, int]) -> Run:
        """`scan --json ARGS`; fails unless the status is ok and the stats match `expect`."""
        run, report = self.json(config, "scan", "--json", *args)
        stats = report.get("stats", {})
        wrong = {key: stats.get(key) for key, value in expect.items() if stats.get(key) != value}
        if wrong or report.get("status") != "ok":
            raise BenchError(f"scan {' '.join(args)}: expected status ok and {expect}, got "
                             f"{report.get('status')!r} and {wrong} (stats {stats})")
        return run


def write_config(path: Path, database_url: str, libraries: dict[str, Path],
                 daemon: dict[str, str] | None = None, enrichers_off: tuple[str, ...] = ()) -> Path:
    lines = ["[daemon]", f"database = {toml_string(database_url)}"]
    lines += [f"{key} = {toml_string(value)}" for key, value in (daemon or {}).items()]
    for name, root in libraries.items():
        lines += ["", "[[library]]", f"name = {toml_string(name)}", f"path = {toml_string(root)}"]
    for name in enrichers_off:
        lines += ["", "[[enricher]]", f"name = {toml_string(name)}", "enabled = false"]
    path.write_text("\n".join(lines) + "\n")
    return path
