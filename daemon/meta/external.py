"""An `[[enricher]]` with a `command`: argv with `{path}`, a timeout, JSON on stdout.

Every failure (command not found, non-zero exit, timeout, output that is not JSON) becomes an
`{"error": ...}` value rather than an exception: the runner records it as the insight, and it
is retried only when the enricher's config (and so its checksum) changes, not on every tick.
The command runs in its own process group so a timeout also kills what it started (a shell
script's children would otherwise keep the pipes open and hang the daemon).
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import time
from collections.abc import Callable
from typing import Any

from daemon.config import EnricherConfig

PATH_PLACEHOLDER = "{path}"
_STDERR_CHARS = 300


def command_argv(enricher: EnricherConfig, path: bytes) -> list[str]:
    # fsdecode uses surrogateescape, and subprocess encodes it back to the exact bytes.
    return [arg.replace(PATH_PLACEHOLDER, os.fsdecode(path)) for arg in enricher.command]


class EnricherInterrupted(OSError):
    """The daemon is stopping: the command was killed and nothing is recorded (retried later)."""


STOP_POLL_S = 0.2


def run_command(
    enricher: EnricherConfig, path: bytes, stop: Callable[[], bool] | None = None
) -> Any:
    """The command's JSON; with `stop`, a stop request kills it within STOP_POLL_S."""
    argv = command_argv(enricher, path)
    try:
        proc = subprocess.Popen(
            argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
            start_new_session=True,
        )
    except OSError as exc:
        return {"error": f"cannot run {argv[0]!r}: {exc.strerror or exc}"}
    deadline = time.monotonic() + enricher.timeout_s
    while True:
        try:
            # A stop request must not wait for a 30 s enricher: SIGTERM ends the daemon in 5 s.
            wait_s = deadline - time.monotonic()
            stdout, stderr = proc.communicate(
                timeout=max(0.0, min(wait_s, STOP_POLL_S) if stop else wait_s))
            break
        except subprocess.TimeoutExpired:
            if time.monotonic() >= deadline:
                _kill(proc)
                return {"error": f"timed out after {enricher.timeout_s:g}s"}
            if stop is not None and stop():
                _kill(proc)
                raise EnricherInterrupted("stopping: enricher killed, to be run again") from None
    if proc.returncode != 0:
        detail = stderr.decode("utf-8", "replace").strip()[-_STDERR_CHARS:]
        return {"error": f"exit status {proc.returncode}" + (f": {detail}" if detail else "")}
    try:
        return json.loads(stdout)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        return {"error": f"stdout is not JSON: {exc}"}


def _kill(proc: subprocess.Popen) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)
    proc.communicate()


def missing_executable(enricher: EnricherConfig) -> str | None:
    """Why the enricher's command cannot start (`config check`), or None when it can."""
    program = enricher.command[0]
    if os.sep in program:
        found = os.path.isfile(program) and os.access(program, os.X_OK)
    else:
        found = shutil.which(program) is not None
    return None if found else f"executable {program!r} not found" + (
        "" if os.sep in program else " on PATH")
