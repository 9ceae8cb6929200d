"""`changes`: the change feed, printed once or followed."""

from __future__ import annotations

import argparse
import signal
import sys
from typing import TYPE_CHECKING

from daemon.cli.output import display_text, json_line
from daemon.errors import EXIT_OK, UsageError

if TYPE_CHECKING:
    from daemon.store import Store
    from daemon.store.changes import ChangeRow

# A wake-up is only a hint (see store/follow.py): re-read at least this often anyway.
FOLLOW_RECHECK_S = 5.0
_DETAIL_LABELS = {"old_path": "from", "tag": "tag", "insight_kind": "kind", "actual": "actual"}


def register(sub: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    from daemon.cli import add_command

    p = add_command(
        sub, common, "changes", "the change feed: what the index applied, in order",
        "Print the changes the index applied, oldest first: created, updated (content "
        "changed, or its hash became known), moved, missing, restored, pruned, tagged, "
        "untagged, insight, corrupt, library_offline, library_online. Each has an id that "
        "never repeats or goes back (across hosts on PostgreSQL): a consumer that stores the "
        "last id it printed and passes it to --since misses nothing.",
        "Changes older than [daemon] change_retention (default 30d) are dropped by the "
        "running daemon, a little every tick; when changes after the --since id were already "
        "dropped, a reset line comes first ({\"kind\": \"reset\", \"oldest_id\": N} with "
        "--json). Human lines: id, time, host, kind, library/path, then the kind's details.",
    )
    p.add_argument("--since", metavar="ID", type=_change_id, default=0,
                   help="start after this id (default: 0, every change kept)")
    p.add_argument("--library", metavar="L", help="only this library's changes")
    p.add_argument("--follow", "-f", action="store_true",
                   help="keep printing new changes as they are applied (every host's on "
                   "PostgreSQL) until interrupted")
    p.add_argument("--json", action="store_true",
                   help='print JSON Lines: {"id", "at", "host", "library", "path", "kind", '
                   '"hash", ...}')
    p.set_defaults(handler=cmd_changes)


def _change_id(text: str) -> int:
    from daemon.store.changes import parse_change_id

    try:
        return parse_change_id(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


class _Stopped(Exception):
    pass


def cmd_changes(ctx) -> int:
    from daemon.store.follow import ChangeWaiter

    args, store = ctx.args, ctx.store
    _check_library(ctx.config, args.library)
    printer = _Printer(as_json=args.json)
    if not args.follow:
        _print_after(store, args.since, args.library, printer)
        return EXIT_OK
    previous = signal.signal(signal.SIGTERM, _raise_stopped)
    waiter = ChangeWaiter(store)  # before the first read: a commit in between still wakes it
    try:
        since = args.since
        while True:
            since = _print_after(store, since, args.library, printer)
            waiter.wait(FOLLOW_RECHECK_S)
    except (_Stopped, KeyboardInterrupt):
        return EXIT_OK
    finally:
        waiter.close()
        signal.signal(signal.SIGTERM, previous)


def _raise_stopped(_signum, _frame) -> None:
    raise _Stopped


def _check_library(config, name: str | None) -> None:
    """A name neither configured nor in the index is a typo, not an empty feed."""
    if name is None or config.library(name) is not None:
        return
    from daemon.store import queries

    if queries.get_library(name) is None:
        raise UsageError(f"no library named {name!r} in the config or the index")


def _print_after(store: Store, since: int, library: str | None, printer: _Printer) -> int:
    """Print everything after `since`; the last id printed (or `since`)."""
    from daemon.store import changes as feed

    for page in feed.iter_all(store, since, library=library):
        if page.reset_oldest_id is not None:
            printer.reset(page.reset_oldest_id)
        for row in page.rows:
            printer.change(row)
        since = page.last_id or since
    sys.stdout.flush()  # a pipe reader sees each batch as it comes
    return since


class _Printer:
    def __init__(self, *, as_json: bool):
        self.as_json = as_json

    def reset(self, oldest_id: int) -> None:
        if self.as_json:
            print(json_line({"kind": "reset", "oldest_id": oldest_id}))
        else:
            print(f"reset: older changes were dropped (change_retention); the oldest kept "
                  f"is {oldest_id}")

    def change(self, row: ChangeRow) -> None:
        if self.as_json:
            print(json_line(row.as_json()))
            return
        where = row.library or "-"
        if row.path is not None:
            where += "/" + display_text(row.path)
        details = " ".join(f"{_DETAIL_LABELS.get(key, key)}={display_text(str(value))}"
                           for key, value in sorted(row.detail.items()))
        line = "\t".join([str(row.id), row.as_json()["at"], row.host, row.kind, where])
        print(f"{line}\t{details}" if details else line)
