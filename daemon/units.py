"""Numbers for people: sizes and rates, shared by the CLI's output and the daemon's STATUS=."""

from __future__ import annotations


def human_bytes(n: float) -> str:
    """Decimal units, as disks are sold: 1.5 GB is 1.5e9 bytes."""
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if abs(n) < 1000 or unit == "TB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000
    return f"{n:.1f} TB"


def human_rate(bytes_per_s: float) -> str:
    return human_bytes(bytes_per_s) + "/s"
