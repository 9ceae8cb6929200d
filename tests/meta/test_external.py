"""External command enrichers: argv with {path}, timeout, JSON stdout, failures as values."""

from __future__ import annotations

import sys
import time

from daemon.config import EnricherConfig
from daemon.meta.external import run_command


def enricher(script: str, timeout_s: float = 10.0) -> EnricherConfig:
    return EnricherConfig(name="probe", match=("*",), timeout_s=timeout_s,
                          command=(sys.executable, "-c", script, "--file={path}"))


def test_json_stdout_is_the_value_and_path_bytes_round_trip(tmp_path):
    path = bytes(tmp_path) + b"/caf\xe9 {x}.bin"
    with open(path, "wb") as f:
        f.write(b"12345")
    script = ("import json, os, sys; p = os.fsencode(sys.argv[1][len('--file='):]);"
              "print(json.dumps({'size': os.path.getsize(p), 'name': repr(p)}))")
    value = run_command(enricher(script), path)
    assert value == {"size": 5, "name": repr(path)}


def test_non_zero_exit_is_an_error_with_stderr(tmp_path):
    value = run_command(enricher("import sys; sys.exit('cannot parse')"), b"/x")
    assert value == {"error": "exit status 1: cannot parse"}


def test_output_that_is_not_json_is_an_error():
    value = run_command(enricher("print('hello')"), b"/x")
    assert value["error"].startswith("stdout is not JSON")


def test_missing_command_is_an_error():
    missing = EnricherConfig(name="probe", match=("*",), command=("/no/such/tool", "{path}"))
    assert run_command(missing, b"/x")["error"].startswith("cannot run '/no/such/tool'")


def test_timeout_kills_the_whole_process_group():
    # The child keeps stdout open: without killing the group, communicate() would wait for it.
    script = ("import subprocess, sys, time;"
              "subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(30)']);"
              "time.sleep(30)")
    started = time.monotonic()
    value = run_command(enricher(script, timeout_s=0.5), b"/x")
    assert value == {"error": "timed out after 0.5s"}
    assert time.monotonic() - started < 10


def test_stdin_is_closed_and_no_shell_reads_the_path(tmp_path):
    """A command that reads stdin gets EOF at once (it never waits on the daemon's stdin), and
    shell syntax in a file name stays a name: the argv reaches the program as it is."""
    script = ("import json, sys; data = sys.stdin.read();"
              "print(json.dumps({'stdin': data, 'arg': sys.argv[1]}))")
    value = run_command(enricher(script), b"/lib/$(touch pwned); `id` | x.jpg")
    assert value == {"stdin": "", "arg": "--file=/lib/$(touch pwned); `id` | x.jpg"}
