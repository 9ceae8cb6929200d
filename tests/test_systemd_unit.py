"""The shipped systemd unit: the lifecycle the daemon implements, and its hardening score.

systemd-analyze is real here (CI installs the `systemd` package); the tests that need it skip
only where it is not installed at all.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

SYSTEMD_DIR = Path(__file__).resolve().parent.parent / "systemd"
UNIT_PATH = SYSTEMD_DIR / "assetd.service"
SYSUSERS_PATH = SYSTEMD_DIR / "assetd.sysusers.conf"

TCP_DROP_IN_PATH = SYSTEMD_DIR / "assetd-postgresql-tcp.conf"

# systemd-analyze reports exposure from 0.0 to 10.0; --threshold takes the same scale times 10.
MAX_EXPOSURE = 0.5  # the unit as shipped: no network, SQLite or a local PostgreSQL socket
MAX_EXPOSURE_WITH_TCP = 1.0  # with the PostgreSQL-over-TCP drop-in

needs_systemd_analyze = pytest.mark.skipif(
    shutil.which("systemd-analyze") is None, reason="systemd-analyze is not installed"
)


def read_unit(path: Path) -> dict[str, dict[str, list[str]]]:
    """section → key → values, in file order (a key like SystemCallFilter= may repeat)."""
    sections: dict[str, dict[str, list[str]]] = {}
    section: dict[str, list[str]] = {}
    for raw_line in path.read_text().splitlines():
        line = raw_line.strip()
        if not line or line.startswith(("#", ";")):
            continue
        if line.startswith("[") and line.endswith("]"):
            section = sections.setdefault(line[1:-1], {})
            continue
        key, _, value = line.partition("=")
        section.setdefault(key.strip(), []).append(value.strip())
    return sections


def run_systemd_analyze(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["systemd-analyze", *args],
        capture_output=True,
        text=True,
        encoding="utf-8",
        errors="replace",
        timeout=120,
        check=False,
    )


def test_unit_is_type_notify_with_watchdog_and_reload() -> None:
    service = read_unit(UNIT_PATH)["Service"]
    assert service["Type"] == ["notify"]
    assert service["NotifyAccess"] == ["main"]
    assert service["ExecReload"] == ["/bin/kill -HUP $MAINPID"]
    assert int(service["WatchdogSec"][0]) > 0
    assert service["ExecStart"][0].endswith(" run")


def test_unit_runs_as_the_sysusers_user() -> None:
    service = read_unit(UNIT_PATH)["Service"]
    assert service["User"] == ["assetd"]
    assert "DynamicUser" not in service
    sysusers_entries = [
        line.split()
        for line in SYSUSERS_PATH.read_text().splitlines()
        if line.strip() and not line.lstrip().startswith("#")
    ]
    assert ["u", "assetd"] in [entry[:2] for entry in sysusers_entries]


def exposure_of(unit_path: Path, limit: float) -> float:
    result = run_systemd_analyze(
        "security", "--offline=yes", f"--threshold={round(limit * 10)}", str(unit_path),
    )
    match = re.search(r"Overall exposure level for \S+: (\d+\.\d+)", result.stdout)
    assert match, f"no overall exposure in output:\n{result.stdout}\n{result.stderr}"
    assert result.returncode == 0, f"{result.stdout}\n{result.stderr}"
    return float(match.group(1))


@needs_systemd_analyze
def test_unit_exposure() -> None:
    assert exposure_of(UNIT_PATH, MAX_EXPOSURE) <= MAX_EXPOSURE


@needs_systemd_analyze
def test_unit_with_the_tcp_drop_in(tmp_path) -> None:
    """A drop-in's [Service] lines apply after the unit's: appending them is the same unit."""
    merged = tmp_path / "assetd.service"
    merged.write_text(UNIT_PATH.read_text() + "\n" + TCP_DROP_IN_PATH.read_text())
    assert exposure_of(merged, MAX_EXPOSURE_WITH_TCP) <= MAX_EXPOSURE_WITH_TCP
    service = read_unit(merged)["Service"]
    assert service["PrivateNetwork"] == ["yes", "no"]
    assert "AF_INET" in service["RestrictAddressFamilies"][-1]


@needs_systemd_analyze
def test_unit_verifies_without_warnings() -> None:
    """Only the binary may be missing (assetd is not installed where the tests run)."""
    result = run_systemd_analyze("verify", str(UNIT_PATH))
    messages = (result.stdout + result.stderr).splitlines()
    unexpected = [line for line in messages if line and "/usr/local/bin/assetd" not in line]
    assert unexpected == []
