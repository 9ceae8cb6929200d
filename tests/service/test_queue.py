"""The scan queue's coalescing, with a clock the test moves by hand."""

from __future__ import annotations

import threading

from daemon.service.queue import (
    Announce,
    EventBatch,
    Rescan,
    ScanQueue,
    Tick,
    aggregate_scopes,
    collapse,
)

SETTLE_S = 0.2


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


def make_queue() -> tuple[ScanQueue, Clock]:
    clock = Clock()
    return ScanQueue(SETTLE_S, clock=clock), clock


def drain(queue: ScanQueue) -> list:
    work = []
    while (item := queue.next(timeout_s=0)) is not None:
        work.append(item)
    return work


def test_repeated_events_on_a_path_are_one_batch_after_settle():
    queue, clock = make_queue()
    queue.add("photos", b"a.jpg")  # created
    clock.advance(0.1)
    queue.add("photos", b"a.jpg")  # modified
    clock.advance(0.1)
    queue.add("photos", b"a.jpg")  # modified again: settle starts over
    clock.advance(SETTLE_S - 0.01)
    assert drain(queue) == []
    clock.advance(0.01)
    assert drain(queue) == [EventBatch("photos", (b"a.jpg",), 1)]
    assert drain(queue) == []


def test_a_path_written_forever_is_still_indexed_after_max_delay():
    queue, clock = make_queue()
    for _ in range(int(queue.max_delay_s / 0.1) + 1):
        queue.add("photos", b"growing.log")
        clock.advance(0.1)
    assert drain(queue) == [EventBatch("photos", (b"growing.log",), 1)]


def test_move_releases_source_and_destination_together():
    queue, clock = make_queue()
    queue.add_move("photos", b"a/cat.jpg", b"b/cat.jpg")
    clock.advance(0.15)
    queue.add("photos", b"b/cat.jpg")  # touched again after the move: not settled yet
    clock.advance(0.1)
    # The source is due, and takes its unsettled partner along.
    assert drain(queue) == [EventBatch("photos", (b"a/cat.jpg", b"b/cat.jpg"), 2)]


def test_paths_under_a_pending_directory_refresh_it_instead():
    queue, clock = make_queue()
    queue.add("photos", b"album")  # directory created
    for i in range(300):
        queue.add("photos", b"album/%d.jpg" % i)
    assert queue.pending_paths() == 1
    clock.advance(SETTLE_S)
    assert drain(queue) == [EventBatch("photos", (b"album",), 1)]


def test_files_deleted_before_their_directory_wait_for_it():
    queue, clock = make_queue()
    for i in range(3):
        queue.add("photos", b"album/%d.jpg" % i)  # rm -rf reports the files first ...
    clock.advance(0.05)
    queue.add("photos", b"album")  # ... then their directory
    clock.advance(SETTLE_S - 0.01)
    assert drain(queue) == [], "the files wait for their directory"
    clock.advance(0.06)
    assert drain(queue) == [EventBatch("photos", (b"album",), 4)]


def test_directory_move_pulls_in_moves_of_files_below_it():
    queue, clock = make_queue()
    queue.add_move("photos", b"new/x.jpg", b"keep/x.jpg")  # a file moved out of new/ ...
    queue.add("photos", b"new")  # ... then new/ deleted
    clock.advance(SETTLE_S)
    [batch] = drain(queue)
    assert batch.scopes == (b"keep/x.jpg", b"new")


def test_many_files_in_one_directory_become_the_directory():
    queue, clock = make_queue()
    for i in range(200):
        queue.add("photos", b"d/%03d.jpg" % i)
    queue.add("photos", b"other.jpg")
    clock.advance(SETTLE_S)
    assert drain(queue) == [EventBatch("photos", (b"d", b"other.jpg"), 201)]


def test_libraries_are_batched_separately():
    queue, clock = make_queue()
    queue.add("photos", b"a.jpg")
    queue.add("music", b"b.flac")
    clock.advance(SETTLE_S)
    assert sorted(drain(queue), key=lambda b: b.library) == [
        EventBatch("music", (b"b.flac",), 1), EventBatch("photos", (b"a.jpg",), 1),
    ]


def test_the_root_itself_is_a_full_scan():
    queue, clock = make_queue()
    queue.add("photos", b"a.jpg")
    queue.add("photos", b"")  # the root was deleted
    clock.advance(SETTLE_S)
    assert drain(queue) == [EventBatch("photos", None, 2)]


def test_events_come_before_jobs_and_equal_jobs_coalesce():
    queue, clock = make_queue()
    queue.put(Tick())
    queue.put(Tick())
    queue.put(Rescan("photos", "startup"))
    queue.put(Rescan("photos", "overflow"))
    queue.put(Announce("ready"))
    queue.add("photos", b"a.jpg")
    clock.advance(SETTLE_S)
    assert drain(queue) == [
        EventBatch("photos", (b"a.jpg",), 1), Tick(), Rescan("photos"), Announce("ready"),
    ]


def test_discard_drops_paths_a_full_scan_will_see():
    queue, clock = make_queue()
    queue.add("photos", b"old.jpg")
    clock.advance(1.0)
    scan_starts = clock()
    clock.advance(0.01)
    queue.add("photos", b"during-scan.jpg")
    assert queue.discard("photos", before_s=scan_starts) == 1
    clock.advance(SETTLE_S)
    assert drain(queue) == [EventBatch("photos", (b"during-scan.jpg",), 1)]


def test_close_wakes_a_waiting_writer_and_refuses_work():
    queue, _ = make_queue()
    result: list = []
    waiter = threading.Thread(target=lambda: result.append(queue.next()))
    waiter.start()
    queue.close()
    waiter.join(5)
    assert result == [None]
    queue.add("photos", b"late.jpg")
    queue.put(Tick())
    assert queue.pending_paths() == 0
    assert queue.next(timeout_s=0) is None


def test_add_wakes_a_writer_waiting_without_timeout():
    queue = ScanQueue(0.01)
    result: list = []
    waiter = threading.Thread(target=lambda: result.append(queue.next()))
    waiter.start()
    queue.add("photos", b"a.jpg")
    waiter.join(5)
    assert result == [EventBatch("photos", (b"a.jpg",), 1)]


def test_collapse_keeps_outermost_paths():
    assert collapse([b"a", b"a/b", b"a-b", b"a/b/c", b"ab"]) == {b"a", b"a-b", b"ab"}
    assert collapse([b"", b"a"]) == {b""}


def test_aggregate_caps_scopes_by_merging_the_deepest_upwards():
    paths = [b"top%d/sub%d/f.jpg" % (t, s) for t in range(4) for s in range(100)]
    assert aggregate_scopes(paths, max_scopes=50) == (b"top0", b"top1", b"top2", b"top3")
    assert aggregate_scopes([b"a%d" % i for i in range(600)], max_scopes=512) is None
