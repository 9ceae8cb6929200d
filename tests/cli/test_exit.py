"""How an `assetd` process ends: a one-shot command skips the interpreter's teardown
(`cli.program`), and loses none of its output for it."""

from __future__ import annotations

import json
import os
import subprocess
import sys

from tests.conftest import REPO_ROOT, cli_env

# Registered at start-up in every Python process of the environment; the teardown runs it.
_ATEXIT_HOOK = '''
import atexit, os
atexit.register(lambda: open(os.environ["ASSETD_TEST_ATEXIT"], "a").write("teardown\\n"))
'''


def test_a_large_output_arrives_whole_through_a_pipe(sqlite_env):
    """Several pipe buffers of JSON Lines: every line is flushed before the process ends."""
    files = {f"d{i // 500}/f{i:05d}.txt": str(i) for i in range(3000)}
    sqlite_env.library("photos", files)
    sqlite_env.cli("scan", "--no-enrich")
    proc = sqlite_env.cli("files", "--json")
    assert len(proc.stdout) > 4 * 65536
    assert sorted(json.loads(line)["path"] for line in proc.stdout.splitlines()) == sorted(files)


def test_a_one_shot_command_skips_the_teardown_and_still_reports_errors(sqlite_env, tmp_path):
    sqlite_env.library("photos", {"a.txt": "a"})
    hook = tmp_path / "hook"
    hook.mkdir()
    (hook / "sitecustomize.py").write_text(_ATEXIT_HOOK)
    marker = tmp_path / "atexit.txt"
    env = cli_env()
    env["PYTHONPATH"] = os.pathsep.join([str(hook), env["PYTHONPATH"]])
    env["ASSETD_TEST_ATEXIT"] = str(marker)

    def assetd(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "daemon", "--config",
                               str(sqlite_env.config_path), *args], capture_output=True,
                              text=True, cwd=REPO_ROOT, env=env, timeout=60)

    scanned = assetd("scan", "--json", "--no-enrich")
    assert scanned.returncode == 0 and json.loads(scanned.stdout)["stats"]["created"] == 1
    failed = assetd("scan", "nosuchlibrary")
    assert failed.returncode == 2 and "nosuchlibrary" in failed.stderr
    assert not marker.exists()
    # argparse's own exit (--help) is an ordinary one: the hook does run there.
    assert assetd("--help").returncode == 0
    assert marker.read_text() == "teardown\n"
