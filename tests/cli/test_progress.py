"""The scan's progress line on a terminal: phase, files, bytes, rate, ETA.

(tests/scan/test_scanner.py::test_progress_bar_on_a_tty runs a real scan on a pty.)
"""

from __future__ import annotations

import io

from daemon.cli.output import TtyProgress, human_eta


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def last_line(stream: io.StringIO) -> str:
    return stream.getvalue().split("\r\x1b[2K")[-1]


def test_hash_and_enrich_phases_show_files_bytes_rate_and_eta():
    stream, clock = io.StringIO(), FakeClock()
    progress = TtyProgress(stream, clock, libraries=["photos", "music"])
    assert last_line(stream) == "walk: listing photos"
    progress.discovered("photos", 1)
    assert last_line(stream) == "walk photos: 1 file found"

    progress.hashing("photos", 3, 4_000_000)
    clock.now += 2
    progress.hashed_bytes(1_000_000)
    assert last_line(stream) == (
        "hash photos: 3 files, 1.0 MB of 4.0 MB (25%), 500.0 KB/s, ETA 6s")

    progress.hashed_bytes(3_000_000)  # done: the next library is listed
    assert last_line(stream) == "walk: listing music"

    progress.enriching("photos", 2, 3_000_000)
    clock.now += 0.5
    progress.enriched_file(1_000_000)
    # under a second: no ETA yet (the first files say little about the rest)
    assert last_line(stream) == "enrich photos: 1 of 2 files, 1.0 MB of 3.0 MB (33%), 2.0 MB/s"
    clock.now += 0.5
    progress.enriched_file(1_000_000)
    assert last_line(stream).endswith("(67%), 2.0 MB/s, ETA 0s")
    progress.close()
    assert stream.getvalue().endswith("\r\x1b[2K")


def test_redraws_are_rate_limited():
    stream, clock = io.StringIO(), FakeClock()
    progress = TtyProgress(stream, clock)
    progress.hashing("photos", 1, 10_000)
    before = stream.getvalue()
    for _ in range(100):
        progress.hashed_bytes(10)
    assert stream.getvalue() == before
    clock.now += 1
    progress.hashed_bytes(10)
    assert stream.getvalue() != before


def test_human_eta():
    assert [human_eta(s) for s in (5, 75, 3725)] == ["5s", "1m15s", "1h02m"]
