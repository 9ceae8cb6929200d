"""A process's children and threads, read from /proc, for the tests that stop real processes."""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

DEADLINE_S = 60.0  # generous: the machine may be loaded; nothing here is a timing assert


def _stat(pid: int) -> list[str] | None:
    """/proc/PID/stat's fields after the command name (state first); None once it is gone."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return None
    return text.rsplit(")", 1)[1].split()


def children(pid: int) -> set[tuple[int, str]]:
    """(pid, start time) of each child of `pid`: the start time tells a reused pid apart."""
    found = set()
    for entry in os.listdir("/proc"):
        if entry.isdigit() and (fields := _stat(int(entry))) and int(fields[1]) == pid:
            found.add((int(entry), fields[19]))
    return found


def alive(process: tuple[int, str]) -> bool:
    """Is this (pid, start time) still running (a zombie is not)?"""
    fields = _stat(process[0])
    return fields is not None and fields[19] == process[1] and fields[0] != "Z"


def threads(pid: int) -> int:
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except FileNotFoundError:
        return 0
    return int(next(line.split()[1] for line in status.splitlines()
                    if line.startswith("Threads:")))


def wait_for(predicate: Callable[[], Any], what: str, timeout_s: float = DEADLINE_S) -> Any:
    """Poll `predicate` until it is true; fails after `timeout_s`."""
    deadline = time.monotonic() + timeout_s
    while not (value := predicate()):
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.002)
    return value
