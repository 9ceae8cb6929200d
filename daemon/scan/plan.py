"""Plan: disk entries and DB rows in, plain data out. No I/O here.

A scan streams both sides, sorted by path, through `PlanStream`: what is decided on sight
goes out in parts (hashed and applied as the walk goes on), and what may be half of a move
is held and matched at the end by `make_plan` (by identity) and `match_moves_by_hash` (a
copy-then-delete across filesystems changes the inode). The mass-missing guard is checked
before the last part and the held work are applied. `--dry-run` applies nothing.
"""

from __future__ import annotations

from array import array
from collections import defaultdict, deque
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field, replace
from functools import partial
from operator import itemgetter

from daemon.keys import last_path
from daemon.scan.walk import DiskEntry, WalkRun
from daemon.store.rows import DbRow, KeyPage


class PagesAhead:
    """The database's pages of keys (`queries.key_pages`), of which up to `max_pages` can be
    fetched before the merge asks for them (`fetch_one`): while the walk keeps the scanning
    process waiting (walkproc.py). The scan writes only rows whose paths the merge has
    passed, so a page read early holds what it would hold when the merge reaches it."""

    def __init__(self, pages: Iterable[KeyPage], max_pages: int):
        self._pages = iter(pages)
        self._ahead: deque[KeyPage] = deque()
        self._max_pages = max_pages
        self._done = False

    def __iter__(self) -> Iterator[KeyPage]:
        return self

    def __next__(self) -> KeyPage:
        if self._ahead:
            return self._ahead.popleft()
        return next(self._pages)

    def fetch_one(self) -> bool:
        """Fetch the next page now; False when all are fetched or `max_pages` wait."""
        if self._done or len(self._ahead) >= self._max_pages:
            return False
        page = next(self._pages, None)
        if page is None:
            self._done = True
            return False
        self._ahead.append(page)
        return True


def row_key(row: DbRow) -> tuple:
    """What a row compares equal to on the fast path: the `DiskEntry` of an unchanged file.

    The inode is None for a row the fast path cannot settle (never hashed, or missing), so
    its key matches no file. The device is in the key only because the entry holds it: a
    file whose device number changed is compared field by field, with the same answer.
    """
    fast = row.content_hash is not None and not row.is_missing
    return (row.rel_path, row.size, row.mtime_ns, row.inode if fast else None, row.device)


def encode_row_keys(rows: Iterable[DbRow]) -> bytes:
    """`row_key`s as `keys.KEY_RECORD`s, a None inode as an empty field (no file's key):
    what `queries.key_pages` has the database compute."""
    return b"".join(
        b"%b\0%d %d %b %d\0" % (path, size, mtime_ns, b"" if inode is None else b"%d" % inode,
                                 device)
        for path, size, mtime_ns, inode, device in map(row_key, rows))


def same_stat(row: DbRow, entry: DiskEntry) -> bool:
    """The fast path: unchanged (size, mtime_ns, inode) means the bytes are not re-read."""
    return (row.size, row.mtime_ns, row.inode) == (entry.size, entry.mtime_ns, entry.inode)


@dataclass
class Plan:
    created: list[DiskEntry] = field(default_factory=list)
    updated: list[tuple[DbRow, DiskEntry]] = field(default_factory=list)
    unchanged: list[DbRow] = field(default_factory=list)
    moved: list[tuple[DbRow, DiskEntry]] = field(default_factory=list)
    missing: list[DbRow] = field(default_factory=list)
    restored: list[tuple[DbRow, DiskEntry]] = field(default_factory=list)
    # Already-missing rows in scope that may still turn out to be the source of a move.
    still_missing: list[DbRow] = field(default_factory=list)

    def needs_hash(self) -> list[DiskEntry]:
        """Files whose bytes must be read: new, changed, or never hashed."""
        entries = list(self.created)
        entries += [entry for _, entry in self.updated]
        entries += [e for row, e in self.moved + self.restored
                    if row.content_hash is None or not same_stat(row, e)]
        entries += [_as_entry(row) for row in self.unchanged if row.content_hash is None]
        return entries


def in_parts(plan: Plan, max_moves: int) -> Iterator[Plan]:
    """`plan` as parts to apply one after the other, to the same effect: its moves
    `max_moves` at a time, then the rest with the last of them (a new file may take a path a
    move leaves: `mv a c; touch a`). A rescan after a large move holds every move of the
    scan until its end, and writing them at once held as much again (`apply_plan`'s
    parameters and changes: ~1 KB a move, 100 MB for 100,000 moved files); a part's worth
    at a time holds a part's. Where a move takes a path another one leaves (a rotation,
    `mv b c; mv a b`), they are written in one part, in their order, as before."""
    moved = plan.moved
    if len(moved) <= max_moves:
        yield plan
        return
    left = {row.rel_path for row, _ in moved}
    if any(entry.rel_path in left for _, entry in moved):
        yield plan
        return
    last = (len(moved) - 1) // max_moves * max_moves
    for start in range(0, last, max_moves):
        yield Plan(moved=moved[start:start + max_moves])
    yield replace(plan, moved=moved[last:])


_as_disk_entry = partial(tuple.__new__, DiskEntry)
_size_of = itemgetter(1)


def _as_entry(row: DbRow) -> DiskEntry:
    return DiskEntry(row.rel_path, row.size, row.mtime_ns, row.inode, row.device)


def _is_under(rel_path: bytes, prefixes: list[bytes]) -> bool:
    return any(
        not prefix or rel_path == prefix or rel_path.startswith(prefix + b"/")
        for prefix in prefixes
    )


def make_plan(
    disk: dict[bytes, DiskEntry],
    db: dict[bytes, DbRow],
    *,
    unreadable: list[bytes] | None = None,
) -> Plan:
    """Compare the snapshots; moves are matched by (device, inode, size, mtime_ns) here."""
    plan = Plan()
    unreadable = unreadable or []
    for rel_path, entry in disk.items():
        row = db.get(rel_path)
        if row is None:
            plan.created.append(entry)
        elif row.is_missing:
            plan.restored.append((row, entry))
        elif same_stat(row, entry):
            plan.unchanged.append(row)
        else:
            plan.updated.append((row, entry))
    vanished: list[DbRow] = []
    for rel_path, row in db.items():
        if rel_path in disk or _is_under(rel_path, unreadable):
            continue
        (plan.still_missing if row.is_missing else vanished).append(row)

    _match_moves_by_identity(plan, vanished)
    moved_ids = {row.id for row, _ in plan.moved}
    plan.missing = [row for row in vanished if row.id not in moved_ids]
    plan.still_missing = [row for row in plan.still_missing if row.id not in moved_ids]
    return plan


def identity(item: DbRow | DiskEntry) -> tuple[int, int, int, int]:
    """What a rename keeps: (device, inode, size, mtime_ns)."""
    return (item.device, item.inode, item.size, item.mtime_ns)


def _match_moves_by_identity(plan: Plan, vanished: list[DbRow]) -> None:
    """Pair new paths with rows by (device, inode, size, mtime_ns).

    A row whose path now holds a different inode may itself have moved: `mv b c; mv a b`
    leaves path b with a's file. Such a displaced row is a move source too; when it is
    claimed, the file now at its old path becomes a new path to match in turn (a's row),
    instead of an in-place edit of b that would carry b's tags onto a's bytes. A displaced
    row nobody claims stays an update (an editor's atomic save replaces the inode in place).
    """
    displaced = {row.id: entry for row, entry in plan.updated
                 if (row.device, row.inode) != (entry.device, entry.inode)}
    # Later entries win: vanished rows over rows missing for a while, over displaced rows.
    by_identity: dict[tuple, DbRow] = {}
    displaced_rows = [row for row, _ in plan.updated if row.id in displaced]
    for row in displaced_rows + plan.still_missing + vanished:
        by_identity[identity(row)] = row
    pending = deque(plan.created)
    plan.created = []
    while pending:
        entry = pending.popleft()
        row = by_identity.pop(identity(entry), None)
        if row is None:
            plan.created.append(entry)
            continue
        plan.moved.append((row, entry))
        if row.id in displaced:
            pending.append(displaced.pop(row.id))
    claimed = {row.id for row, _ in plan.moved}
    plan.updated = [(row, entry) for row, entry in plan.updated if row.id not in claimed]


def match_moves_by_hash(
    plan: Plan, hashes: dict[bytes, str], sources: Plan | None = None
) -> None:
    """Second move pass: a new file whose (size, hash) equals a vanished row's is that row.

    Among several candidates the one with the same file name wins, then one that vanished in
    this scan over one that was already missing, then the oldest row. The vanished rows are
    `sources`' (the whole scan's plan, when `plan` is one part of it); matched ones are
    removed from it.
    """
    sources = sources or plan
    candidates: dict[tuple[int, str], list[tuple[int, DbRow]]] = defaultdict(list)
    for rank, rows in ((0, sources.missing), (1, sources.still_missing)):
        for row in rows:
            if row.content_hash is not None:
                candidates[(row.size, row.content_hash)].append((rank, row))
    if not candidates:
        return
    remaining: list[DiskEntry] = []
    for entry in plan.created:
        content_hash = hashes.get(entry.rel_path)
        options = candidates.get((entry.size, content_hash)) if content_hash else None
        if not options:
            remaining.append(entry)
            continue
        name = entry.rel_path.rpartition(b"/")[2]
        best = min(
            options, key=lambda o: (o[1].rel_path.rpartition(b"/")[2] != name, o[0], o[1].id)
        )
        options.remove(best)
        plan.moved.append((best[1], entry))
    plan.created = remaining
    moved_ids = {row.id for row, _ in plan.moved}
    sources.missing = [row for row in sources.missing if row.id not in moved_ids]
    sources.still_missing = [row for row in sources.still_missing if row.id not in moved_ids]


def mass_missing_exceeded(
    would_mark: int, indexed_present: int, threshold: float, *, minimum_files: int = 100
) -> bool:
    """The guard: more than `threshold` of a 100+ file library vanishing looks like an outage."""
    return indexed_present >= minimum_files and would_mark > threshold * indexed_present


def merge_sorted(
    disk: Iterable[DiskEntry], db: Iterable[DbRow]
) -> Iterator[tuple[DiskEntry | None, DbRow | None]]:
    """Pair two streams sorted by rel_path bytes: (entry, row), (entry, None), (None, row)."""
    disk_it, db_it = iter(disk), iter(db)
    entry, row = next(disk_it, None), next(db_it, None)
    while entry is not None or row is not None:
        if row is None or (entry is not None and entry.rel_path < row.rel_path):
            yield entry, None
            entry = next(disk_it, None)
        elif entry is None or row.rel_path < entry.rel_path:
            yield None, row
            row = next(db_it, None)
        else:
            yield entry, row
            entry, row = next(disk_it, None), next(db_it, None)


class VanishedIds:
    """The ids of the rows whose file vanished in this scan, in the merge's order: 8 bytes
    and a bit a row, not the row.

    A whole library can vanish (a share mounted empty, a disk that failed to mount: the
    mass-missing guard's case); holding each row, as the stream did, took 866 MB at a million
    files, in the daemon at every scan of such a library. A row is only needed whole where it
    may be half of a move, and the scanner's lookups by identity and by content hash find
    those (`final_plan`'s `sources`); everything else only needs marking missing, by id.

    Membership is a bitmap in blocks of `BLOCK_IDS` ids, made for the blocks that hold a
    vanished id: ids are dense where rows were inserted together, and a bitmap over every id
    up to the largest would grow with every row ever inserted (a PostgreSQL sequence never
    gives an id back).
    """

    BLOCK_IDS = 4096  # 512 bytes a block

    def __init__(self) -> None:
        self._order = array("q")
        self._blocks: dict[int, bytearray] = {}

    def add(self, row_id: int) -> None:
        self._order.append(row_id)
        block = self._blocks.get(row_id // self.BLOCK_IDS)
        if block is None:
            block = self._blocks[row_id // self.BLOCK_IDS] = bytearray(self.BLOCK_IDS // 8)
        offset = row_id % self.BLOCK_IDS
        block[offset >> 3] |= 1 << (offset & 7)

    def __contains__(self, row_id: object) -> bool:
        if not isinstance(row_id, int):
            return False
        block = self._blocks.get(row_id // self.BLOCK_IDS)
        offset = row_id % self.BLOCK_IDS
        return block is not None and bool(block[offset >> 3] >> (offset & 7) & 1)

    def __len__(self) -> int:
        return len(self._order)

    def __iter__(self) -> Iterator[int]:
        return iter(self._order)


class PlanStream:
    """The plan of a scan too large to hold: merged (disk, row) pairs in, parts out.

    Most pairs are decided on sight and go into the current part (`part`), which the scanner
    hashes and applies and then replaces (`take_part`): unchanged, updated in place,
    restored, and new paths that cannot be the destination of a move. What could be one half
    of a move waits for the end (`final_plan`), where `make_plan` matches it as before:
    rows that vanished, rows whose path now holds another inode (`mv b c; mv a b`), and the
    new paths and edits that the scanner found, by a lookup, to share an identity or a
    content hash with a row that may still turn out to have left its place (`hold_created`,
    `hold_updated`). Those are what changed; the unchanged rest of the library passes through
    one pair at a time, so memory does not grow with the library.

    Already-missing rows are not held, and rows that vanished are held by id only
    (`VanishedIds`): the scanner's lookups name the ones that matter. `unreadable` is the
    walk's list, which grows as the walk reaches each directory and so always before the rows
    under it arrive.
    """

    def __init__(self, unreadable: list[bytes]):
        self.unreadable = unreadable
        self.part = Plan()
        self.part_reads = 0
        self.part_bytes = 0
        self.position = b""
        self.discovered = 0
        self.unchanged = 0  # fast-path files: counted, not kept
        self.present_rows = 0  # rows not marked missing that the merge saw
        self.vanished = VanishedIds()
        self.displaced: dict[int, tuple[DbRow, DiskEntry]] = {}
        self.held_created: list[DiskEntry] = []
        self.held_updated: list[tuple[DbRow, DiskEntry]] = []
        self.restored_ids: set[int] = set()
        # Hashes of content that left its place in this scan (see apply.replaced_content),
        # but for the vanished rows' (the scanner looks those up by `vanished`).
        self.replaced: set[str] = set()

    def add(self, entry: DiskEntry | None, row: DbRow | None) -> None:
        if row is None:
            self.discovered += 1
            self._to_part(entry.size, True)
            self.part.created.append(entry)
            return
        if entry is None:
            if row.is_missing:
                return
            self.present_rows += 1
            if not _is_under(row.rel_path, self.unreadable):
                self.vanished.add(row.id)
            return
        self.discovered += 1
        if row.is_missing:
            self.restored_ids.add(row.id)
            self._to_part(entry.size, row.content_hash is None or not same_stat(row, entry))
            self.part.restored.append((row, entry))
            return
        self.present_rows += 1
        if same_stat(row, entry):
            if row.content_hash is None:
                self._to_part(row.size, True)
                self.part.unchanged.append(row)
            else:
                self.unchanged += 1
            return
        self._replaced(row)
        if (row.device, row.inode) != (entry.device, entry.inode):
            self.displaced[row.id] = (row, entry)
        else:
            self._to_part(entry.size, True)
            self.part.updated.append((row, entry))

    def consume(
        self, runs: Iterable[WalkRun], pages: Iterable[KeyPage], *, max_files: int,
        max_bytes: int
    ) -> Iterator[Plan]:
        """`add` every pair of the merged streams; yields each part as it fills.

        `runs` are the walk's (`walk.keyed_runs`, `walkproc.walk_runs_in_children`), `pages` the
        database's keys. A run whose keys are the next keys of the pages is unchanged as a
        whole: one bytes comparison in C, with no Python object per file or per row, which
        is nearly all of a no-change rescan. Anything else is merged file by file.
        `position` is the last path added.
        """
        rows = _RowStream(pages)
        add = self.add
        for run in runs:
            if rows.peek() is None:
                yield from self._add_created(run.entries(), max_files, max_bytes)
                continue
            if run.keys and rows.take_equal(run.keys):
                n = run.keys.count(b"\0") >> 1
                self.discovered += n
                self.present_rows += n
                self.unchanged += n
                self.position = last_path(run.keys)
                continue
            for entry in map(_as_disk_entry, run.entries()):
                rel_path = entry.rel_path
                if (next_path := rows.peek()) is not None and next_path < rel_path:
                    yield from self._rows_before(rows, rel_path, max_files, max_bytes)
                    next_path = rows.peek()
                self.position = rel_path
                add(entry, rows.pop() if next_path == rel_path else None)
                if self.part_full(max_files, max_bytes):
                    yield self.take_part()
        yield from self._rows_before(rows, None, max_files, max_bytes)

    def _add_created(self, run: list[DiskEntry], max_files: int,
                     max_bytes: int) -> Iterator[Plan]:
        """A run past the last row (all of a cold scan): every file is new, added a part's
        room at a time instead of an `add` per file (~1 µs a file of the scanning process,
        which a cold scan's hash workers wait for)."""
        start = 0
        while start < len(run):
            chunk = run[start:start + max(1, max_files - self.part_reads)]
            chunk_bytes = sum(map(_size_of, chunk))
            if self.part_bytes + chunk_bytes >= max_bytes:
                chunk = run[start:start + 1]  # the part fills on bytes: one by one
                chunk_bytes = chunk[0][1]
            start += len(chunk)
            self.part.created += map(_as_disk_entry, chunk)
            self.discovered += len(chunk)
            self.part_reads += len(chunk)
            self.part_bytes += chunk_bytes
            self.position = chunk[-1][0]
            if self.part_full(max_files, max_bytes):
                yield self.take_part()

    def _rows_before(self, rows: _RowStream, end: bytes | None, max_files: int,
                     max_bytes: int) -> Iterator[Plan]:
        """`add` the rows with no file on disk, up to `end` (None: all that are left)."""
        while (next_path := rows.peek()) is not None and (end is None or next_path < end):
            self.position = next_path
            row = rows.pop()
            if row is not None:
                self.add(None, row)
            if self.part_full(max_files, max_bytes):
                yield self.take_part()

    def _replaced(self, row: DbRow) -> None:
        if row.content_hash is not None:
            self.replaced.add(row.content_hash)

    def _to_part(self, size: int, reads: bool) -> None:
        self.part_reads += 1 if reads else 0
        self.part_bytes += size if reads else 0

    def part_full(self, max_files: int, max_bytes: int) -> bool:
        return self.part_reads >= max_files or self.part_bytes >= max_bytes or (
            len(self.part.restored) >= max_files)

    def take_part(self) -> Plan:
        part, self.part = self.part, Plan()
        self.part_reads = self.part_bytes = 0
        return part

    def could_be_source(self, row: DbRow, visited: bool) -> bool:
        """May `row`, found by a lookup, yet turn out to have left its place?

        A row the merge has not reached may vanish; one it has reached is a source only
        if it vanished, was displaced, or is missing and was not found again.
        """
        if not visited:
            return True
        if row.id in self.vanished or row.id in self.displaced:
            return True
        return row.is_missing and row.id not in self.restored_ids

    def hold_created(self, entry: DiskEntry) -> None:
        self.held_created.append(entry)

    def hold_updated(self, row: DbRow, entry: DiskEntry) -> None:
        self.held_updated.append((row, entry))

    def final_plan(self, sources: Iterable[DbRow]) -> Plan:
        """Everything held, as one plan with moves matched by identity (`make_plan`).

        `sources` are rows the lookups found: those that vanished, and those still missing,
        are the move sources; the lookups must have looked for every held file's identity
        (and the plan's `missing` holds only the vanished rows among them: the others are
        missing by id, `missing_ids`). Call it after the merge has seen every pair.
        """
        disk = {entry.rel_path: entry for entry in self.held_created}
        db: dict[bytes, DbRow] = {}
        for row, entry in list(self.displaced.values()) + self.held_updated:
            disk[entry.rel_path] = entry
            db[row.rel_path] = row
        for row in sources:
            if row.id in self.vanished:
                db[row.rel_path] = row
            elif row.is_missing and row.id not in self.restored_ids:
                db.setdefault(row.rel_path, row)
        return make_plan(disk, db)

    def held_identities(self) -> list[DiskEntry]:
        """The held files whose identity no lookup has looked for yet: those at a displaced
        row's path, and the held edits (`hold_created`'s were looked up as they came)."""
        return [entry for _, entry in list(self.displaced.values()) + self.held_updated]

    def missing_ids(self, final: Plan) -> Iterator[int]:
        """The ids of the rows to mark missing: those that vanished and did not move."""
        moved = {row.id for row, _ in final.moved}
        return (row_id for row_id in self.vanished if row_id not in moved)

    def missing_count(self, final: Plan) -> int:
        vanished = self.vanished
        return len(vanished) - sum(1 for row, _ in final.moved if row.id in vanished)


# Full rows read at once where a key is merged file by file: from that key on, within its
# page, `LOAD_ROWS` and twice as many at each read that follows the last one with no run
# compared in bulk between them (a stretch of changes). Reading the whole page (5,000 rows)
# read every row of a library whose changes are spread over it: a tenth of its directories
# moved read all 100,000 rows of 100k files, 0.43 s of a 1.3 s rescan on PostgreSQL.
LOAD_ROWS = 100


class _RowStream:
    """The database side of a merge: the pages' encoded keys in one buffer, compared a run
    at a time; full rows are read only where a key is merged file by file, from that key on
    (`LOAD_ROWS`). Every record starts at a NUL-free rel_path and ends at its second NUL."""

    def __init__(self, pages: Iterable[KeyPage]):
        self._pages = iter(pages)
        self._keys = b""  # the records not taken yet start at `_at`
        self._at = 0
        self._unloaded: deque[KeyPage] = deque()  # pages whose keys are in the buffer
        self._loaded: dict[bytes, DbRow] = {}
        self._loaded_through = b""  # the last key of the page in `_loaded`
        self._load_rows = LOAD_ROWS  # how many the next read of full rows asks for
        self._took_in_bulk = True  # since that read
        self._taken = b""  # the path of the last record taken
        self._done = False

    def _fill(self, size: int) -> None:
        """At least `size` bytes of records not taken yet in the buffer, or all there are."""
        while len(self._keys) - self._at < size and not self._done:
            page = next(self._pages, None)
            if page is None:
                self._done = True
            elif page.keys:
                rest = self._keys[self._at:]
                first = rest[:rest.index(b"\0")] if rest else None  # the next key's path
                # A page whose keys were all taken (compared in bulk) is never loaded.
                while self._unloaded and (first is None or self._unloaded[0].last < first):
                    self._unloaded.popleft()
                self._keys = rest + page.keys
                self._at = 0
                self._unloaded.append(page)

    def take_equal(self, keys: bytes) -> bool:
        """Take the next records if they are `keys` (a run's: whole records)."""
        self._fill(len(keys))
        if self._keys.startswith(keys, self._at):
            self._at += len(keys)
            self._taken = last_path(keys)
            self._took_in_bulk = True
            return True
        return False

    def peek(self) -> bytes | None:
        """The next row's rel_path; None when there are no more."""
        self._fill(1)
        keys, at = self._keys, self._at
        return keys[at:keys.index(b"\0", at)] if at < len(keys) else None

    def pop(self) -> DbRow | None:
        """The next row, read with the rest of its page (None: deleted since its key was
        read, e.g. by a prune)."""
        keys, at = self._keys, self._at
        end = keys.index(b"\0", at)
        rel_path = keys[at:end]
        if rel_path <= self._taken:
            # The database aggregated a page out of its subquery's order: merging on would
            # pair files with the wrong rows (a run taken whole was in the walk's order).
            raise RuntimeError("the database returned a page of keys out of rel_path order")
        self._taken = rel_path
        self._at = keys.index(b"\0", end + 1) + 1
        row = self._loaded.pop(rel_path, None)
        if row is None and rel_path > self._loaded_through:
            # Keys are taken in order: a key not loaded yet is at or after this one, and the
            # rows loaded before it were passed, so they can go.
            while self._unloaded and self._unloaded[0].last < rel_path:
                self._unloaded.popleft()
            if self._unloaded:
                page = self._unloaded[0]
                self._load_rows = LOAD_ROWS if self._took_in_bulk else 2 * self._load_rows
                self._took_in_bulk = False
                rows = page.load(rel_path, self._load_rows)
                self._loaded = {r.rel_path: r for r in rows}
                self._loaded_through = (rows[-1].rel_path if len(rows) == self._load_rows
                                        else page.last)
                row = self._loaded.pop(rel_path, None)
        return row


def add_sources(plan: Plan, rows: Iterable[DbRow]) -> None:
    """Already-missing rows a lookup found after `final_plan`: hash-move sources too."""
    known = {row.id for row in plan.still_missing} | {row.id for row in plan.missing}
    known |= {row.id for row, _ in plan.moved}
    for row in rows:
        if row.id not in known:
            known.add(row.id)
            plan.still_missing.append(row)
