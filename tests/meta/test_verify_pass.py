"""The scheduled verify's pacing and read budget, on an injected clock (no waiting)."""

from __future__ import annotations

import pytest

from daemon.meta.verify_pass import ReadBudget, VerifyCursor, step_seconds

MB = 1_000_000


class FakeClock:
    """A clock that only moves when the budget sleeps."""

    def __init__(self) -> None:
        self.now = 100.0
        self.slept: list[float] = []
        self.stop_after: int | None = None

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> bool:
        if self.stop_after is not None and len(self.slept) >= self.stop_after:
            return True
        self.slept.append(seconds)
        self.now += seconds
        return False


@pytest.mark.parametrize("rate", [50 * MB, 500_000, 1024 ** 3])
def test_reading_averages_the_rate_with_one_second_of_burst(rate):
    clock = FakeClock()
    budget = ReadBudget(rate, clock=clock, sleep=clock.sleep)
    chunk = 1 << 20
    total = 0
    for _ in range(300):
        assert budget.spend(chunk)
        total += chunk
        # At any moment the bytes read are at most a second's worth ahead of the rate.
        assert total <= rate * (clock.now - 100.0) + rate + chunk
    elapsed = clock.now - 100.0
    assert elapsed >= (total - rate) / rate * 0.999
    assert elapsed <= total / rate  # and never slower than the rate asks


def test_an_idle_hour_does_not_become_a_burst():
    clock = FakeClock()
    budget = ReadBudget(10 * MB, clock=clock, sleep=clock.sleep)
    clock.now += 3600
    assert budget.spend(10 * MB)  # one second's worth: no wait
    assert clock.slept == []
    assert budget.spend(5 * MB)
    assert sum(clock.slept) == pytest.approx(0.5)


def test_a_stop_request_ends_the_wait():
    clock = FakeClock()
    clock.stop_after = 0
    budget = ReadBudget(MB, clock=clock, sleep=clock.sleep)
    assert budget.spend(MB)
    assert not budget.spend(MB)


def test_a_pass_is_paced_by_bytes_over_the_interval():
    """Simulate a 100 s pass over files of mixed sizes, a step every second: the bytes read
    follow the clock (no burst at the start, nothing left for the end)."""
    sizes = [50 * MB] + [MB] * 50  # one big file among small ones
    cursor = VerifyCursor(pass_started_at=0.0, of_files=len(sizes), of_bytes=sum(sizes))
    interval_s = 100.0
    for now in range(1, 101):
        while cursor.files < len(sizes) and cursor.is_due(now, interval_s):
            cursor = cursor.visited(cursor.files + 1, sizes[cursor.files], mismatch=False)
        # Behind by at most the file just started, ahead by at most that file too.
        assert abs(cursor.bytes - cursor.of_bytes * now / interval_s) <= 50 * MB
    assert cursor.files == len(sizes) and cursor.bytes == sum(sizes)


def test_small_files_are_spread_evenly():
    cursor = VerifyCursor(pass_started_at=0.0, of_files=1000, of_bytes=1000 * MB)
    done_at = {}
    for now in range(1, 11):
        while cursor.is_due(now, 10.0) and cursor.files < 1000:
            cursor = cursor.visited(cursor.files + 1, MB, mismatch=False)
        done_at[now] = cursor.files
    assert done_at == {now: now * 100 for now in range(1, 11)}


def test_past_the_interval_everything_left_is_due_and_before_the_start_nothing():
    cursor = VerifyCursor(pass_started_at=1000.0, of_files=2, of_bytes=2 * MB)
    assert not cursor.is_due(999.0, 100.0)  # the next pass has not started yet
    assert not cursor.is_due(1000.0, 100.0)
    done = cursor.visited(1, MB, False).visited(2, MB, False)
    assert done.is_due(1100.0, 100.0)  # files added since the start are read now
    assert not done.is_due(1099.0, 100.0)


def test_an_empty_library_paces_by_files():
    cursor = VerifyCursor(pass_started_at=0.0, of_files=4, of_bytes=0)
    assert cursor.is_due(1.0, 100.0)
    assert not cursor.visited(1, 0, False).is_due(1.0, 100.0)
    assert cursor.visited(1, 0, False).is_due(26.0, 100.0)
    assert not VerifyCursor(0.0, 0, 0).is_due(50.0, 100.0)


def test_the_next_pass_starts_an_interval_after_this_one_or_now_if_late():
    cursor = VerifyCursor(pass_started_at=1000.0, of_files=1, of_bytes=1)
    assert cursor.next_pass_start(1050.0, 100.0) == 1100.0
    assert cursor.next_pass_start(1300.0, 100.0) == 1300.0


def test_the_cursor_round_trips_and_counts_mismatches():
    cursor = VerifyCursor(12.5, 3, 30).visited(7, 10, True).visited(9, 10, False)
    assert (cursor.last_file_id, cursor.files, cursor.bytes, cursor.mismatches) == (9, 2, 20, 1)
    assert VerifyCursor.from_text(cursor.to_text()) == cursor


@pytest.mark.parametrize(("interval_s", "step_s"),
                         [(2.0, 0.5), (60.0, 0.6), (3600.0, 10.0), (30 * 86400.0, 10.0)])
def test_steps(interval_s, step_s):
    assert step_seconds(interval_s) == step_s
