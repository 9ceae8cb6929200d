"""Numbers and names for people: sizes, rates, times and paths, shared by the CLI and the
daemon's STATUS= (a module of the standard library's weight: `status` and `files` import it)."""

from __future__ import annotations

from datetime import UTC, datetime


def path_text(rel_path: bytes) -> str:
    """How people see a path: undecodable bytes as \\xNN escapes."""
    return rel_path.decode("utf-8", "backslashreplace")


def iso_utc(ts: float | None, timespec: str = "seconds") -> str | None:
    """Stored epoch seconds as ISO 8601 UTC: 2026-11-25T12:00:00Z."""
    if ts is None:
        return None
    return datetime.fromtimestamp(ts, UTC).isoformat(timespec=timespec).replace("+00:00", "Z")


def human_bytes(n: float) -> str:
    """Decimal units, as disks are sold: 1.5 GB is 1.5e9 bytes."""
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if abs(n) < 1000 or unit == "TB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000
    return f"{n:.1f} TB"


def human_rate(bytes_per_s: float) -> str:
    return human_bytes(bytes_per_s) + "/s"


def plural(count: int, noun: str, plural_noun: str | None = None) -> str:
    """`1 file`, `2 files`, `1 mismatch`, `3 mismatches` (with thousands separators)."""
    if count == 1:
        return f"1 {noun}"
    if plural_noun is None:
        plural_noun = noun + ("es" if noun.endswith(("s", "sh", "ch", "x", "z")) else "s")
    return f"{count:,} {plural_noun}"
