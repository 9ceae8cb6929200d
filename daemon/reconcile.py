"""The reconciliation passes: small set-based functions, run in order, each idempotent.

The daemon runs them after every tick's backfill and `assetd reconcile` runs them once, so a
pass must change nothing the second time and must never depend on having run before. They
run in one write transaction under the `assetd.reconcile` lock, so two processes (or two
hosts on one PostgreSQL) never run them at once. Adding a pass is adding one function to
`PASSES` and one test.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from daemon import logs
from daemon.config import Config, EnricherConfig
from daemon.meta.content import RULES
from daemon.meta.enrichers import active_enrichers, enricher_checksum, enricher_set_checksum
from daemon.meta.insights import satisfied_condition
from daemon.meta.match import MATCHES_EVERY_PATH, sql_match
from daemon.store import Store, labels, paths, queries
from daemon.store.models import STATE_CODES, STATE_ENRICHING, STATE_NEW, STATE_READY

RECONCILE_LOCK = "assetd.reconcile"


def null_hash_fill(store: Store, config: Config) -> int:
    """Tags and insights recorded while their file's hash was unknown get the hash now."""
    changed = 0
    for table in ("tag", "insight"):
        same_file = (
            f"f.library_id = {table}.library_id AND f.rel_path = {table}.rel_path"
        )
        # A hashed insight keeps no path (`insights.located`); a tag keeps where it was set.
        unlocate = ", library_id = NULL, rel_path = NULL" if table == "insight" else ""
        cursor = store.execute(
            f"UPDATE {table} SET content_hash = (SELECT f.content_hash FROM file f"
            f" WHERE {same_file}){unlocate} WHERE content_hash IS NULL AND EXISTS"
            f" (SELECT 1 FROM file f WHERE {same_file} AND f.content_hash IS NOT NULL)"
        )
        changed += cursor.rowcount
    return changed


def insight_collapse(store: Store, config: Config, *, after_id: int = 0) -> int:
    """One current insight per (content_hash, kind): the earliest stays, the rest are demoted.

    Two hosts (or a NULL-hash fill) can each make an insight current for the same content;
    ties on `generated_at` go to the lower id so every run picks the same winner. Only groups
    with more than one current row are looked at (a GROUP BY over the (content_hash, kind)
    index). With `after_id` (the daemon's ticks, see `Watermark`), only the groups holding an
    insight newer than that id: a row never becomes current again, so any new duplicate
    group holds a row inserted since the last pass, and a tick costs what changed instead of
    a walk over a million insights (0.7 s).
    """
    if after_id:
        groups, params = ("SELECT content_hash, kind_label FROM insight WHERE id > ?"
                          " AND is_current AND content_hash IS NOT NULL"), [after_id]
    else:
        groups, params = ("SELECT content_hash, kind_label FROM insight WHERE is_current"
                          " AND content_hash IS NOT NULL GROUP BY content_hash, kind_label"
                          " HAVING COUNT(*) > 1"), []
    cursor = store.execute(
        "UPDATE insight SET is_current = ? WHERE is_current"
        f" AND (content_hash, kind_label) IN ({groups})"
        " AND EXISTS (SELECT 1 FROM insight o WHERE o.content_hash = insight.content_hash"
        " AND o.kind_label = insight.kind_label AND o.is_current"
        " AND (o.generated_at < insight.generated_at"
        " OR (o.generated_at = insight.generated_at AND o.id < insight.id)))",
        [False, *params],
    )
    return cursor.rowcount


def lifecycle(store: Store, config: Config, *, library: str | None = None,
              scopes: list[bytes] | None = None) -> int:
    """new → enriching → ready, and ready → enriching when the enricher set changed.

    Only this config's libraries: hosts sharing a database may configure different enricher
    sets, and each must not keep sending the other's files back to `enriching`. A scan
    settles just what it scanned (`library`, and its `scopes` for `--path`): a partial scan
    never touches a file outside its scope.
    """
    libraries = [lib.name for lib in config.libraries if library in (None, lib.name)]
    if not libraries:
        return 0
    in_scope = (
        "library_id IN (SELECT id FROM library WHERE name IN ("
        + ", ".join("?" for _ in libraries) + "))"
    )
    paths_sql, paths_params = queries.scope_condition(scopes or [])
    in_scope += paths_sql
    scope_params = [*libraries, *paths_params]
    set_checksum = enricher_set_checksum(active_enrichers(config.enrichers))
    label = labels.ids(store, [set_checksum])[set_checksum]
    new, enriching, ready = (STATE_CODES[state]
                             for state in (STATE_NEW, STATE_ENRICHING, STATE_READY))
    changed = store.execute(
        f"UPDATE file SET state = ? WHERE state = ? AND content_hash IS NOT NULL AND {in_scope}",
        [enriching, new, *scope_params],
    ).rowcount
    # Spelled as three ranges of the (state, checksum_label) index (`<`/`>`, not `<>`),
    # each empty when nothing changed, instead of a walk through every ready file per tick.
    changed += store.execute(
        "UPDATE file SET state = ? WHERE ((state = ? AND checksum_label IS NULL)"
        " OR (state = ? AND checksum_label < ?) OR (state = ? AND checksum_label > ?))"
        f" AND {in_scope}",
        [enriching, ready, ready, label, ready, label, *scope_params],
    ).rowcount
    return changed + _make_ready(store, config, label, in_scope, scope_params)


def _make_ready(store: Store, config: Config, label: int, in_scope: str, scope_params: list,
                *, one_part: bool = False) -> int:
    """`enriching` -> `ready` for the files in scope that no matching enricher waits for;
    `label` is the enricher set checksum's. `one_part`: the scope is a scan's part, an id
    range (`settle_created`)."""
    waiting, waiting_params, every_file = _waiting_condition(store, config)
    # A file is ready only with a satisfying insight of each enricher that applies to every
    # file: where one of them has none in the whole index (a library scanned with
    # --no-enrich), no file can be, and the statement need not visit each waiting file to
    # find that out (~40 ms at 100k files, on every no-change rescan of such a library).
    # Not for one part: the statement is cheap there, and the look-up could read the whole
    # insight table before it met the part's new insights.
    if not one_part and not all(_satisfies_any(store, enricher) for enricher in every_file):
        return 0
    # A part goes by its id range, not through the state index (`+state`), which holds every
    # file still waiting for a heavy enricher (every JPEG of a photo library) as they pile up.
    state = "+state" if one_part else "state"
    enriching, ready = STATE_CODES[STATE_ENRICHING], STATE_CODES[STATE_READY]
    return store.execute(
        f"UPDATE file SET state = ?, checksum_label = ? WHERE {state} = ?"
        f" AND content_hash IS NOT NULL AND {in_scope} AND NOT ({waiting})",
        [ready, label, enriching, *scope_params, *waiting_params],
    ).rowcount


def _satisfies_any(store: Store, enricher: EnricherConfig) -> bool:
    """Does any insight leave `enricher` nothing to do for its content?"""
    done_sql, done_params = satisfied_condition(enricher, enricher_checksum(enricher))
    return bool(store.query(f"SELECT 1 FROM insight i WHERE {done_sql} LIMIT 1", done_params))


def settle_scanned(store: Store, config: Config, library: str,
                   scopes: list[bytes] | None = None) -> int:
    """After a one-shot scan (and its enrichers): the lifecycle of what it scanned, so its
    files are `ready` when it returns. Not the other passes (`assetd reconcile` runs those)."""
    with store.write_tx():
        store.lock(RECONCILE_LOCK)
        return lifecycle(store, config, library=library, scopes=scopes)


def settle_created(store: Store, config: Config, library_id: int, after_id: int,
                   through_id: int, set_checksum: str) -> int:
    """The lifecycle of the rows a scan just inserted into one library (ids in (`after_id`,
    `through_id`]), as it applies each part (a one-shot scan, the daemon's whole-library
    scans): the hashed files whose only enricher is the `mime` recorded from the hashing read
    become `ready` while the hash workers read the next part. Before, one-shot scans settled
    every file after the scan and the enrich step looked at every file first, with the workers
    idle: at 100k files of random bytes the scanning process spent ~3 s less CPU (of ~8) once
    this took over. It is `lifecycle`'s last statement; `new` rows and a changed enricher set
    are not a fresh part's business (new rows hold the set's checksum, `set_checksum`, the
    scan's `enricher_set_checksum`), so `settle_scanned` (or the daemon's tick) still runs
    after."""
    with store.write_tx():
        store.lock(RECONCILE_LOCK)
        # By the id range, through no other index: the library's (library_id, rel_path)
        # would walk the whole library for each part.
        return _make_ready(
            store, config, labels.ids(store, [set_checksum])[set_checksum],
            "id > ? AND id <= ? AND +library_id = ?", [after_id, through_id, library_id],
            one_part=True)


def _waiting_condition(store: Store,
                       config: Config) -> tuple[str, list, list[EnricherConfig]]:
    """SQL true for a file that some matching enricher has not finished with, and the
    enrichers that match every file.

    A media built-in matches only content of its kind (`meta/content.py`); an enricher that
    cannot run on this host (`video` without ffprobe) is not waited for.
    """
    clauses, params, every_file = [], [], []
    for enricher in active_enrichers(config.enrichers):
        match_sql, match_params = sql_match(
            enricher.match, paths.text_sql("file", is_sqlite=store.is_sqlite),
            is_sqlite=store.is_sqlite)
        rule = RULES.get(enricher.name) if enricher.builtin else None
        if match_sql == MATCHES_EVERY_PATH and rule is None:
            every_file.append(enricher)
        if rule is not None:
            rule_sql, rule_params = rule.sql(is_sqlite=store.is_sqlite)
            match_sql, match_params = f"({match_sql} AND {rule_sql})", match_params + rule_params
        done_sql, done_params = satisfied_condition(enricher, enricher_checksum(enricher))
        clauses.append(
            f"({match_sql} AND NOT EXISTS (SELECT 1 FROM insight i"
            f" WHERE i.content_hash = file.content_hash AND {done_sql}))"
        )
        params += match_params + done_params
    return (" OR ".join(clauses) or "1 = 0"), params, every_file


Pass = Callable[[Store, Config], int]
PASSES: list[tuple[str, Pass]] = [
    ("null_hash_fill", null_hash_fill),
    ("insight_collapse", insight_collapse),
    ("lifecycle", lifecycle),
]


class Watermark:
    """The newest insight id a finished run of the passes had seen (one per daemon)."""

    def __init__(self) -> None:
        self.insight_id = 0


def run_passes(store: Store, config: Config,
               watermark: Watermark | None = None) -> dict[str, int]:
    """Every pass once, in order, in one transaction; rows changed per pass.

    With a `watermark` (the daemon's ticks), `insight_collapse` looks only at groups changed
    since the last run; the first run, and a run whose NULL-hash fill gave old insights a
    hash, look at all of them. `assetd reconcile` always does.
    """
    started = time.monotonic()
    with store.write_tx():
        store.lock(RECONCILE_LOCK)
        newest = store.query("SELECT COALESCE(MAX(id), 0) FROM insight")[0][0]
        changes = {}
        for name, run in PASSES:
            if run is insight_collapse and watermark is not None \
                    and not changes.get("null_hash_fill"):
                changes[name] = insight_collapse(store, config, after_id=watermark.insight_id)
            else:
                changes[name] = run(store, config)
    if watermark is not None:
        watermark.insight_id = newest
    # Every tick runs the passes: a run that changed nothing is not news at info level. Asked
    # first: `assetd reconcile` (level warning) then imports no structlog (~20 ms of its ~130).
    level = "info" if any(changes.values()) else "debug"
    if logs.enabled(level):
        getattr(logs.get_logger(), level)(
            logs.RECONCILE_FINISHED, changes=sum(changes.values()),
            duration_s=round(time.monotonic() - started, 3), **changes,
        )
    return changes
