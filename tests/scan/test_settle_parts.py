"""A one-shot scan settles each part as it applies it (`reconcile.settle_created`): the new
files whose only enricher is the `mime` sniffed from the hashing read are `ready` before the
scan goes on, files a heavy enricher still waits for stay `enriching`, and rows the part did
not insert are left to the lifecycle pass."""

from __future__ import annotations

from daemon.config import load_config
from daemon.scan import scanner
from daemon.scan.progress import Progress
from daemon.scan.scanner import ScanOptions, scan_library
from daemon.store import queries
from daemon.store.models import STATE_NAMES
from tests.media import jpeg_bytes

TEXTS = {f"a/t{i:02d}.txt": f"text {i}" for i in range(12)}


def states(store) -> dict[str, str]:
    library = queries.get_library("photos")
    if library is None:
        return {}
    return {bytes(path).decode(): STATE_NAMES[state] for path, state in store.query(
        "SELECT rel_path, state FROM file WHERE library_id = ?", [library.id])}


class StatesSeen(Progress):
    """The scan's own progress reports: a look at the index between its parts."""

    def __init__(self, store):
        self.store, self.seen = store, []

    def discovered(self, library: str, files: int) -> None:
        self.seen.append(states(self.store))


def scan(env, store, progress=None, **options):
    config = load_config(str(env.config_path))
    return scan_library(store, config, config.libraries[0], options=ScanOptions(**options),
                        progress=progress)


def test_each_part_is_settled_while_the_scan_goes_on(env, store, monkeypatch):
    monkeypatch.setattr(scanner, "PART_FILES", 4)
    env.library("photos", {"a/p00.jpg": jpeg_bytes(), **TEXTS})  # the JPEG is in part 1
    progress = StatesSeen(store)
    scan(env, store, progress, sniff=True, settle_parts=True)
    # While later parts were still to come, the first part's texts were ready already.
    mid_scan = [seen for seen in progress.seen[:-1] if "a/t02.txt" in seen]
    assert mid_scan and mid_scan[0]["a/t00.txt"] == "ready"
    assert "a/t11.txt" not in mid_scan[0]
    after = states(store)
    # The image waits for `image` and `phash` (the enrich step after the scan runs them).
    assert after.pop("a/p00.jpg") == "enriching"
    assert set(after.values()) == {"ready"}


def test_only_the_rows_the_part_inserted_are_settled(env, store):
    root = env.library("photos", {"old.txt": "old"})
    scan(env, store, sniff=False)  # hashed, no mime: enriching, for the lifecycle pass
    (root / "new.txt").write_text("new")
    scan(env, store, sniff=True, settle_parts=True)
    assert states(store) == {"old.txt": "enriching", "new.txt": "ready"}


def test_without_settle_parts_a_scan_leaves_the_lifecycle_to_its_pass(env, store):
    env.library("photos", TEXTS)
    scan(env, store, sniff=True)  # the daemon's scans: its tick settles them
    assert set(states(store).values()) == {"enriching"}
