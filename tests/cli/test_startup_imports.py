"""Each command imports only what it needs: `--help` no service, `status` no scanner.

Start-up time is measured in bench/ (bench/README.md, "CLI start-up"), never asserted here;
these tests guard what makes it: the modules a command leaves unimported. Each runs the CLI in a
fresh interpreter and reads its `sys.modules` when the command is done.
"""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys

import pytest

from tests.conftest import REPO_ROOT, cli_env

# What `scan` and `run` need, and no read-only command should pay for.
SCANNING = (
    "daemon.scan.scanner", "daemon.scan.hashpool", "daemon.meta.enrich",
    "daemon.meta.enrichers", "daemon.reconcile", "daemon.service.runner",
    "daemon.service.watcher", "daemon.service.ticker", "daemon.service.http", "http.server",
    "multiprocessing", "magic", "PIL", "numpy", "apscheduler", "watchdog",
)
# structlog imports asyncio; daemon/logs.py imports it on the first event, and these commands
# log nothing.
LOGGING = ("structlog", "asyncio")
# Parsing the command line needs neither the config nor the database.
DATABASE = ("daemon.config", "tomllib", "daemon.store", "peewee", "psycopg2", "sqlite3")
# Reading a SQLite index needs neither the PostgreSQL driver (peewee imports it, and ssl with
# it, unless daemon/store/__init__.py hides it) nor what a scan composes its work from: the
# queries, the plan, the walk, the apply, the hashing.
NOT_FOR_READING = (
    "psycopg2", "ssl", "daemon.store.queries", "daemon.scan.plan", "daemon.scan.walk",
    "daemon.scan.apply", "daemon.scan.hash", "xxhash",
)

_PROBE = """
import json, sys
from daemon.cli import main
report, argv = sys.argv[1], sys.argv[2:]
try:
    code = main(argv)
except SystemExit as exc:
    code = exc.code
with open(report, "w") as out:
    json.dump({"code": code, "modules": sorted(sys.modules)}, out)
"""


def imported_by(tmp_path, *argv: str) -> set[str]:
    """The modules loaded by `assetd ARGV` in a fresh interpreter; the command must succeed."""
    report = tmp_path / "modules.json"
    proc = subprocess.run([sys.executable, "-c", _PROBE, str(report), *argv],
                          capture_output=True, text=True, cwd=REPO_ROOT, env=cli_env(),
                          timeout=60)
    result = json.loads(report.read_text())
    assert result["code"] in (0, None), proc.stderr
    return set(result["modules"])


def test_the_lists_name_real_modules():
    """A misspelt name would never be imported, and its test would pass for nothing."""
    for name in SCANNING + LOGGING + DATABASE + NOT_FOR_READING:
        assert importlib.util.find_spec(name) is not None, name


@pytest.mark.parametrize("argv", [["--help"], ["--version"], ["scan", "--help"],
                                  ["config", "check", "--help"]], ids=" ".join)
def test_help_and_version_import_no_service(tmp_path, argv):
    loaded = imported_by(tmp_path, *argv)
    assert loaded & {*SCANNING, *LOGGING, *DATABASE} == set()


@pytest.mark.parametrize("command", [["status"], ["status", "--json"], ["files"],
                                     ["files", "--json", "--all"], ["tag", "ls"], ["changes"]],
                         ids=" ".join)
def test_read_commands_import_neither_scanner_nor_logging(sqlite_env, tmp_path, command):
    sqlite_env.library("photos", {"a.txt": "a", "sub/b.txt": "b"})
    sqlite_env.cli("scan", "--no-enrich")
    loaded = imported_by(tmp_path, "--config", str(sqlite_env.config_path), *command)
    assert loaded & {*SCANNING, *LOGGING, *NOT_FOR_READING} == set()
    assert "peewee" in loaded  # it did read the index


@pytest.mark.postgres
def test_postgresql_gets_its_driver_all_the_same(env, tmp_path):
    """peewee imported without psycopg2 is given it when a PostgreSQL URL is opened: the
    commands still work there (and load it), and SQLite's do not."""
    env.library("photos", {"a.txt": "a"})
    env.cli("scan", "--no-enrich")
    loaded = imported_by(tmp_path, "--config", str(env.config_path), "files", "--json")
    assert ("psycopg2" in loaded) == env.db_url.startswith("postgresql")
    assert [f["path"] for f in env.json_lines("files")] == ["a.txt"]


def test_scan_does_import_the_scanner(sqlite_env, tmp_path):
    """The probe sees lazy imports: the guard above is not blind."""
    sqlite_env.library("photos", {"a.txt": "a"})
    loaded = imported_by(tmp_path, "--config", str(sqlite_env.config_path), "scan",
                         "--no-enrich")
    assert {"daemon.scan.scanner", "peewee"} <= loaded
    # Its info events are below a one-shot command's level: dropped without structlog.
    assert loaded & {*LOGGING, "psycopg2"} == set()


def test_scan_without_enrichment_or_a_pool_leaves_their_modules_unimported(sqlite_env,
                                                                          tmp_path):
    """The `mime` checksum needs only to know whether libmagic loads (meta/mime.py);
    python-magic's import (`ldconfig -p` twice) is for a scan that sniffs or enriches
    something, and
    multiprocessing's for one with enough files to hash to start the hash pool."""
    sqlite_env.library("photos", {"a.txt": "a"})
    config = str(sqlite_env.config_path)
    pool = {"multiprocessing", "concurrent.futures"}
    loaded = imported_by(tmp_path, "--config", config, "scan", "--no-enrich")
    assert loaded & {"magic", *pool} == set()
    assert "magic" in imported_by(tmp_path, "--config", config, "scan")  # sniffs a.txt
    assert "magic" not in imported_by(tmp_path, "--config", config, "scan")  # nothing new
    sqlite_env.library("many", {f"{i}.txt": str(i) for i in range(300)})
    assert pool <= imported_by(tmp_path, "--config", config, "scan", "--no-enrich", "many")


def test_a_rescan_with_nothing_to_enrich_imports_no_logging(sqlite_env, tmp_path):
    """The enrich step after a scan binds its logger only for a file it hands to the
    workers: a default rescan that finds nothing new logs nothing, and pays no structlog."""
    sqlite_env.library("photos", {"a.txt": "a", "b.txt": "b"})
    config = str(sqlite_env.config_path)
    sqlite_env.cli("scan")
    loaded = imported_by(tmp_path, "--config", config, "scan")
    assert "daemon.meta.enrich" in loaded  # it did look for work
    assert loaded & set(LOGGING) == set()


def test_reconcile_imports_no_logging(sqlite_env, tmp_path):
    """`assetd reconcile` logs its `reconcile.finished` at info or debug, under the CLI's
    level (warning): asked first, it pays no structlog (~20 ms of its ~130)."""
    sqlite_env.library("photos", {"a.txt": "a", "b.txt": "b"})
    config = str(sqlite_env.config_path)
    sqlite_env.cli("scan")
    loaded = imported_by(tmp_path, "--config", config, "reconcile")
    assert "daemon.reconcile" in loaded
    assert loaded & set(LOGGING) == set()
