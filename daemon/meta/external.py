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
import signal
import subprocess
from typing import Any

from daemon.config import EnricherConfig

PATH_PLACEHOLDER = "{path}"
_STDERR_CHARS = 300


def command_argv(enricher: EnricherConfig, path: bytes) -> list[str]:
    # fsdecode uses surrogateescape, and subprocess encodes it back to the exact bytes.
    return [arg.replace(PATH_PLACEHOLDER, os.fsdecode(path)) for arg in enricher.command]


def run_command(enricher: EnricherConfig, path: bytes) -> Any:
    argv = command_argv(enricher, path)
    try:
        proc = subprocess.Popen(
            argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
            start_new_session=True,
        )
    except OSError as exc:
        return {"error": f"cannot run {argv[0]!r}: {exc.strerror or exc}"}
    try:
        stdout, stderr = proc.communicate(timeout=enricher.timeout_s)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.communicate()
        return {"error": f"timed out after {enricher.timeout_s:g}s"}
    if proc.returncode != 0:
        detail = stderr.decode("utf-8", "replace").strip()[-_STDERR_CHARS:]
        return {"error": f"exit status {proc.returncode}" + (f": {detail}" if detail else "")}
    try:
        return json.loads(stdout)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        return {"error": f"stdout is not JSON: {exc}"}
