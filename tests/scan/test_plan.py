"""The plan is plain data: these tests need no disk and no database."""

from functools import partial

from daemon.scan import plan
from daemon.scan.plan import (
    PagesAhead,
    Plan,
    PlanStream,
    VanishedIds,
    encode_row_keys,
    in_parts,
    make_plan,
    mass_missing_exceeded,
    match_moves_by_hash,
    merge_sorted,
)
from daemon.scan.walk import DiskEntry, keyed_runs
from daemon.store.rows import DbRow, KeyPage

H1 = "xxh128:" + "1" * 32
H2 = "xxh128:" + "2" * 32


def disk(path: str, size=10, mtime_ns=100, inode=1, device=7) -> DiskEntry:
    return DiskEntry(path.encode(), size, mtime_ns, inode, device)


def row(row_id: int, path: str, size=10, mtime_ns=100, inode=1, device=7, content_hash=H1,
        missing=False) -> DbRow:
    return DbRow(row_id, path.encode(), size, mtime_ns, inode, device, content_hash, missing,
                 "new")


def snapshot(*entries):
    return {e.rel_path: e for e in entries}


def test_new_files_are_created_and_need_hashing():
    plan = make_plan(snapshot(disk("a"), disk("b", inode=2)), {})
    assert [e.rel_path for e in plan.created] == [b"a", b"b"]
    assert [e.rel_path for e in plan.needs_hash()] == [b"a", b"b"]


def test_unchanged_stat_is_the_fast_path_and_is_not_rehashed():
    plan = make_plan(snapshot(disk("a")), snapshot(row(1, "a")))
    assert [r.id for r in plan.unchanged] == [1]
    assert plan.needs_hash() == []


def test_unchanged_but_never_hashed_needs_hashing():
    plan = make_plan(snapshot(disk("a")), snapshot(row(1, "a", content_hash=None)))
    assert [r.id for r in plan.unchanged] == [1]
    assert [e.rel_path for e in plan.needs_hash()] == [b"a"]


def test_changed_size_mtime_or_inode_is_updated():
    db = snapshot(row(1, "a"), row(2, "b", inode=2), row(3, "c", inode=3))
    plan = make_plan(
        snapshot(disk("a", size=11), disk("b", inode=2, mtime_ns=101), disk("c", inode=30)), db
    )
    assert sorted(r.id for r, _ in plan.updated) == [1, 2, 3]
    assert len(plan.needs_hash()) == 3


def test_vanished_file_is_missing_and_already_missing_stays_put():
    plan = make_plan({}, snapshot(row(1, "a"), row(2, "b", inode=2, missing=True)))
    assert [r.id for r in plan.missing] == [1]
    assert [r.id for r in plan.still_missing] == [2]


def test_file_back_at_same_path_is_restored_with_same_row():
    plan = make_plan(snapshot(disk("a")), snapshot(row(1, "a", missing=True)))
    assert [(r.id, e.rel_path) for r, e in plan.restored] == [(1, b"a")]
    assert plan.needs_hash() == []  # same stat as before it vanished


def test_rename_is_matched_by_device_inode_size_mtime():
    plan = make_plan(snapshot(disk("new/name", inode=5)), snapshot(row(1, "old", inode=5)))
    assert [(r.id, e.rel_path) for r, e in plan.moved] == [(1, b"new/name")]
    assert plan.created == [] and plan.missing == []
    assert plan.needs_hash() == []


def test_same_inode_on_another_device_is_not_a_move():
    plan = make_plan(snapshot(disk("b", inode=5, device=8)), snapshot(row(1, "a", inode=5)))
    assert plan.moved == []
    assert len(plan.created) == 1 and len(plan.missing) == 1


def test_move_by_hash_when_inode_changed():
    plan = make_plan(snapshot(disk("copy/a", inode=9)), snapshot(row(1, "a", inode=5)))
    assert plan.moved == []
    match_moves_by_hash(plan, {b"copy/a": H1})
    assert [(r.id, e.rel_path) for r, e in plan.moved] == [(1, b"copy/a")]
    assert plan.created == [] and plan.missing == []


def test_hash_move_needs_equal_size_and_hash():
    plan = make_plan(snapshot(disk("x", inode=9, size=99)), snapshot(row(1, "a", inode=5)))
    match_moves_by_hash(plan, {b"x": H1})
    assert plan.moved == []
    plan = make_plan(snapshot(disk("x", inode=9)), snapshot(row(1, "a", inode=5)))
    match_moves_by_hash(plan, {b"x": H2})
    assert plan.moved == []


def test_hash_move_prefers_same_name_then_freshly_vanished():
    db = snapshot(
        row(1, "old/other", inode=1),
        row(2, "old/photo.jpg", inode=2, missing=True),
        row(3, "older/photo.jpg", inode=3),
    )
    plan = make_plan(snapshot(disk("new/photo.jpg", inode=9)), db)
    match_moves_by_hash(plan, {b"new/photo.jpg": H1})
    assert [r.id for r, _ in plan.moved] == [3]
    assert sorted(r.id for r in plan.missing) == [1]
    assert [r.id for r in plan.still_missing] == [2]


def test_one_source_row_moves_to_one_destination_only():
    plan = make_plan(snapshot(disk("x", inode=8), disk("y", inode=9)), snapshot(row(1, "a")))
    match_moves_by_hash(plan, {b"x": H1, b"y": H1})
    assert len(plan.moved) == 1 and len(plan.created) == 1


def test_rows_under_an_unreadable_directory_are_not_missing():
    plan = make_plan({}, snapshot(row(1, "locked/a"), row(2, "other")), unreadable=[b"locked"])
    assert [r.id for r in plan.missing] == [2]


def test_mass_missing_guard_threshold():
    assert not mass_missing_exceeded(60, 99, 0.5)  # small libraries are not guarded
    assert mass_missing_exceeded(51, 100, 0.5)
    assert not mass_missing_exceeded(50, 100, 0.5)
    assert not mass_missing_exceeded(-5, 100, 0.5)


def test_rotation_is_two_moves_not_an_edit():
    # mv b c; mv a b
    db = snapshot(row(1, "a", inode=1), row(2, "b", inode=2, content_hash=H2))
    plan = make_plan(snapshot(disk("b", inode=1), disk("c", inode=2)), db)
    assert sorted((r.id, e.rel_path) for r, e in plan.moved) == [(1, b"b"), (2, b"c")]
    assert plan.updated == [] and plan.created == [] and plan.missing == []


def test_atomic_save_replacing_the_inode_is_an_update():
    plan = make_plan(snapshot(disk("a", inode=9, size=11)), snapshot(row(1, "a", inode=1)))
    assert [r.id for r, _ in plan.updated] == [1]
    assert plan.moved == []


def test_swap_of_two_files_is_two_moves():
    db = snapshot(row(1, "a", inode=1), row(2, "b", inode=2))
    plan = make_plan(snapshot(disk("a", inode=2), disk("b", inode=1)), db)
    # Both paths are "displaced"; no new path starts the chain, so both stay updates.
    assert sorted(r.id for r, _ in plan.updated) == [1, 2]


def runs_and_pages(disk_entries, db_rows, run_files=2, page_rows=2):
    """The merge's inputs in small runs and pages, so run and page boundaries are crossed."""
    runs = [disk_entries[i:i + run_files] for i in range(0, len(disk_entries), run_files)]
    pages = [db_rows[i:i + page_rows] for i in range(0, len(db_rows), page_rows)]
    return list(keyed_runs(runs)), [
        KeyPage(encode_row_keys(page), page[-1].rel_path, partial(rows_from, page))
        for page in pages]


def rows_from(page: list[DbRow], start: bytes, limit: int) -> list[DbRow]:
    """A page's `load`, as `queries.key_pages` gives it."""
    return [r for r in page if r.rel_path >= start][:limit]


def stream_of(disk_entries, db_rows, unreadable=None) -> PlanStream:
    stream = PlanStream(unreadable or [])
    runs, pages = runs_and_pages(disk_entries, db_rows)
    assert list(stream.consume(runs, pages, max_files=10**6, max_bytes=1 << 60)) == []
    return stream


def test_merge_pairs_two_sorted_streams():
    pairs = list(merge_sorted([disk("a"), disk("b"), disk("d")], [row(1, "b"), row(2, "c")]))
    assert [(e and e.rel_path, r and r.id) for e, r in pairs] == [
        (b"a", None), (b"b", 1), (None, 2), (b"d", None)]


def test_stream_counts_the_fast_path_without_keeping_it():
    stream = stream_of([disk(f"f{i}", inode=i) for i in range(1000)],
                       [row(i, f"f{i}", inode=i) for i in range(1000)])
    assert stream.unchanged == 1000 and stream.present_rows == 1000
    part = stream.take_part()
    assert part.unchanged == [] and part.created == [] and stream.final_plan([]).missing == []


def test_stream_decides_plain_work_on_sight_and_holds_move_halves():
    stream = stream_of(
        [disk("a", size=11), disk("b", inode=22), disk("new", inode=5), disk("r", inode=6)],
        [row(1, "a"), row(2, "b", inode=2), row(5, "gone", inode=9, missing=True),
         row(3, "old", inode=3), row(4, "r", inode=6, missing=True)],
    )
    part = stream.take_part()
    assert [r.id for r, _ in part.updated] == [1]  # same inode: an edit, now
    assert [e.rel_path for e in part.created] == [b"new"]
    assert [r.id for r, _ in part.restored] == [4]
    assert list(stream.displaced) == [2] and list(stream.vanished) == [3]  # held
    assert stream.present_rows == 3  # the guard's count: rows not already missing


def test_a_new_path_held_before_its_source_vanished_is_a_move():
    # The walk meets a/photo before the merge reaches z/photo's row; a lookup found z/photo.
    stream = PlanStream([])
    for entry, db_row in merge_sorted([disk("a/photo", inode=5)], [row(1, "z/photo", inode=5)]):
        if db_row is None:
            assert stream.could_be_source(row(1, "z/photo", inode=5), visited=False)
            stream.hold_created(entry)
        else:
            stream.add(entry, db_row)
    assert stream.take_part().created == []
    # A vanished row is held by id: the lookup's row is what the end matches.
    assert stream.final_plan([]).moved == []
    plan = stream.final_plan([row(1, "z/photo", inode=5)])
    assert [(r.id, e.rel_path) for r, e in plan.moved] == [(1, b"a/photo")]
    assert plan.missing == [] and plan.created == []


def test_could_be_source_after_the_merge_passed_the_row():
    stream = stream_of([disk("back", inode=4), disk("kept", inode=2)],
                       [row(4, "back", inode=4, missing=True), row(1, "gone"),
                        row(2, "kept", inode=2), row(3, "long", missing=True)])
    assert stream.could_be_source(row(1, "gone"), visited=True)  # vanished
    assert stream.could_be_source(row(3, "long", missing=True), visited=True)
    assert not stream.could_be_source(row(4, "back", missing=True), visited=True)  # restored
    assert not stream.could_be_source(row(2, "kept", inode=2), visited=True)  # present


def test_already_missing_rows_are_sources_only_when_a_lookup_names_them():
    stream = stream_of([disk("x", inode=9)], [row(1, "old", inode=9, missing=True)])
    stream.hold_created(stream.take_part().created[0])
    plan = stream.final_plan([row(1, "old", inode=9, missing=True)])
    assert [(r.id, e.rel_path) for r, e in plan.moved] == [(1, b"x")]


def test_stream_keeps_rows_under_an_unreadable_directory():
    unreadable: list[bytes] = []
    stream = PlanStream(unreadable)
    unreadable.append(b"locked")  # the walk records it before the rows under it arrive
    for entry, db_row in merge_sorted([], [row(1, "locked/a"), row(2, "other")]):
        stream.add(entry, db_row)
    assert list(stream.vanished) == [2]


def test_consume_yields_parts_as_they_fill():
    stream = PlanStream([])
    runs, pages = runs_and_pages([disk(f"f{i}", inode=i) for i in range(7)],
                                 [row(1, "f0", inode=0)])
    parts = list(stream.consume(runs, pages, max_files=3, max_bytes=1 << 60))
    assert [len(p.created) for p in parts] == [3, 3] and stream.unchanged == 1
    assert [e.rel_path for e in stream.take_part().created] == []
    assert stream.position == b"f6"


def test_consume_decides_alike_whatever_the_run_and_page_sizes():
    """Runs compared in bulk and pairs merged one by one give the same plan: unchanged runs,
    hash-less and missing rows, edits, a changed device number, new and vanished paths."""
    import random

    rng = random.Random(7)
    entries, rows = [], []
    for i in range(400):
        path = f"d{i // 50}/f{i:03d}"
        kind = rng.choice(["same"] * 6 + ["new", "gone", "edit", "unhashed", "missing", "dev"])
        entry = disk(path, inode=i + 1)
        if kind != "gone":
            entries.append(entry if kind != "dev" else entry._replace(device=8))
        if kind != "new":
            rows.append(row(i + 1, path, inode=i + 1, size=11 if kind == "edit" else 10,
                            content_hash=None if kind == "unhashed" else H1,
                            missing=kind == "missing"))

    def outcome(run_files, page_rows):
        stream = PlanStream([])
        runs, pages = runs_and_pages(entries, rows, run_files, page_rows)
        parts = list(stream.consume(runs, pages, max_files=7, max_bytes=1 << 60))
        parts.append(stream.take_part())
        return (stream.unchanged, stream.discovered, stream.present_rows, sorted(stream.vanished),
                [(len(p.created), len(p.updated), len(p.unchanged), len(p.restored))
                 for p in parts], stream.position)

    one_by_one = outcome(1, 1)
    assert one_by_one[0] > 200 and one_by_one[3]
    for run_files, page_rows in ((50, 5000), (3, 2), (400, 7), (13, 400)):
        assert outcome(run_files, page_rows) == one_by_one


def test_keys_out_of_order_stop_the_merge():
    """The database aggregates each page in its subquery's order; were a page ever out of
    it, pairing files with rows would go wrong silently. The merge refuses instead."""
    import pytest

    stream = PlanStream([])
    runs, _ = runs_and_pages([disk("b", size=11)], [])
    rows = [row(2, "c"), row(1, "a")]
    pages = [KeyPage(encode_row_keys(rows), b"a", partial(rows_from, rows))]
    with pytest.raises(RuntimeError, match="out of rel_path order"):
        list(stream.consume(runs, pages, max_files=10, max_bytes=1 << 60))


def test_pages_ahead_fetches_a_bounded_number_early_and_keeps_their_order():
    fetched = []

    def pages():
        for number in range(5):
            fetched.append(number)
            yield KeyPage(b"%d\0" % number, b"%d" % number, list)

    ahead = PagesAhead(pages(), max_pages=2)
    assert fetched == []  # nothing is read until asked
    assert ahead.fetch_one() and ahead.fetch_one() and not ahead.fetch_one()
    assert fetched == [0, 1]
    assert next(ahead).last == b"0"
    assert ahead.fetch_one() and fetched == [0, 1, 2]
    assert [page.last for page in ahead] == [b"1", b"2", b"3", b"4"]
    assert not ahead.fetch_one()


def test_vanished_ids_keep_the_merge_order_and_cost_what_vanished_not_the_largest_id():
    vanished = VanishedIds()
    ids = [7, 3, 4096, 10**12, 4095, 2**40 + 1]  # a sequence that handed out many ids
    for row_id in ids:
        vanished.add(row_id)
    assert list(vanished) == ids and len(vanished) == 6
    assert all(row_id in vanished for row_id in ids)
    assert not any(row_id in vanished for row_id in (0, 2, 4, 4097, 10**12 + 1, 2**40, "7"))
    assert len(vanished._blocks) == 4  # blocks where ids vanished, not up to 10**12


def _moves(count: int) -> list:
    return [(row(i, f"old/{i:03d}", inode=i), disk(f"new/{i:03d}", inode=i))
            for i in range(count)]


def test_a_large_move_is_applied_a_part_of_moves_at_a_time_then_the_rest():
    moves = _moves(25)
    plan = Plan(created=[disk("old/000", inode=99)], updated=[(row(50, "x"), disk("x"))],
                moved=moves, missing=[row(60, "gone")])
    parts = list(in_parts(plan, 10))
    assert [len(part.moved) for part in parts] == [10, 10, 5]
    assert [move for part in parts for move in part.moved] == moves  # in their order
    assert all(not (p.created or p.updated or p.missing) for p in parts[:-1])
    last = parts[-1]  # the new file takes a path a move leaves: after every move
    assert (last.created, last.updated, last.missing) == (plan.created, plan.updated,
                                                          plan.missing)


def test_moves_that_fit_a_part_or_form_a_rotation_are_applied_at_once():
    small = Plan(moved=_moves(10))
    assert list(in_parts(small, 10)) == [small]
    # mv old/003 new/tmp; mv old/004 old/003: a move takes the path another one leaves
    rotation = Plan(moved=[*_moves(20), (row(90, "old/004", inode=90),
                                         disk("old/003", inode=90))])
    assert list(in_parts(rotation, 10)) == [rotation]


def _merge_counting_loads(disk_entries, db_rows, run_files=10):
    """Merge one page of `db_rows` with the walk's runs; the full-row reads it made."""
    loads = []

    def load(start, limit):
        loads.append(limit)
        return rows_from(db_rows, start, limit)

    runs, _ = runs_and_pages(disk_entries, [], run_files=run_files)
    page = KeyPage(encode_row_keys(db_rows), db_rows[-1].rel_path, load)
    stream = PlanStream([])
    assert list(stream.consume(runs, [page], max_files=10**6, max_bytes=1 << 60)) == []
    return stream, loads


def test_full_rows_are_read_where_keys_differ_not_the_whole_page():
    """Changes spread over a page (two directories gone) read a few rows each; a stretch of
    changes reads twice as many at each read, so it still takes a few reads."""
    names = [f"p{i:04d}" for i in range(1000)]
    db_rows = [row(i, name, inode=i) for i, name in enumerate(names)]
    gone = {*names[100:110], *names[500:510]}
    kept = [disk(name, inode=i) for i, name in enumerate(names) if name not in gone]
    stream, loads = _merge_counting_loads(kept, db_rows)
    assert sorted(stream.vanished) == [i for i, name in enumerate(names) if name in gone]
    assert sum(loads) <= 4 * plan.LOAD_ROWS  # not the page's 1,000
    edited = [disk(name, size=99, inode=i) for i, name in enumerate(names)]
    stream, loads = _merge_counting_loads(edited, db_rows)
    assert len(stream.part.updated) == 1000
    assert loads == [100, 200, 400, 800]  # read from each first key on, at most that many
