"""`scan`, `status`, `files`, `config check`."""

from __future__ import annotations

import argparse
import sys
from typing import TYPE_CHECKING

from daemon.cli.output import (
    TtyProgress,
    display_path,
    display_text,
    human_duration,
    print_json,
)
from daemon.errors import EXIT_FAILURES, EXIT_OFFLINE, EXIT_OK, EXIT_USAGE
from daemon.units import human_bytes, iso_utc, plural

if TYPE_CHECKING:
    from daemon.mounts import Mount
    from daemon.scan.scanner import ScanReport


def register(sub: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    from daemon.cli import STATES_HELP, add_command

    p = add_command(
        sub, common, "scan", "one-shot scan of the libraries in scope",
        "Scan libraries (all, the named ones, or the files and directories given with --path): "
        "index new files, hash new and changed ones, notice moves, mark vanished files missing "
        "(never deleting their rows), and run the enrichers on content they have not seen. An "
        "offline library is reported and left untouched. Does not run the reconcile passes "
        "(`assetd reconcile`). On a terminal, a progress line on stderr shows the phase (walk, "
        "hash, enrich), files, bytes, rate and an estimate of the time left.",
        "Exit status: 0 ok; 1 some files could not be read; 3 a library in scope was offline "
        "(the others were still scanned); 130 Ctrl-C, 143 SIGTERM: stopped, keeping the parts "
        "of a long scan already committed (the next scan carries on from them).",
    )
    p.add_argument("libraries", nargs="*", metavar="LIB",
                   help="names of libraries to scan (default: every configured library)")
    p.add_argument("--path", action="append", default=[], metavar="DIR",
                   help="scan only this file or directory (inside a library; repeatable)")
    p.add_argument("--dry-run", action="store_true",
                   help="compute the same stats, write nothing")
    p.add_argument("--no-hash", action="store_true",
                   help="do not read file contents (new and changed files get no hash yet)")
    p.add_argument("--no-enrich", action="store_true", help="do not run the enrichers")
    p.add_argument("--allow-mass-missing", action="store_true",
                   help="mark files missing even when more than mass_missing_threshold of a "
                   "library vanished")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.set_defaults(handler=cmd_scan)

    p = add_command(
        sub, common, "status", "libraries and running daemons",
        "Libraries (online or offline and why, file counts, last scan) and the daemons using "
        "this database (host, pid, last tick).",
    )
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.set_defaults(handler=cmd_status)

    p = add_command(
        sub, common, "files", "list indexed files",
        "List indexed files, present ones by default: library/path, size, content hash and "
        "state (or since when it is missing), and its tags. Names are printed with "
        "backslash escapes (\\\\ for a backslash, \\n, \\t, \\xNN for control characters and "
        "bytes that are not UTF-8), one file a line.",
        "States: " + STATES_HELP,
    )
    p.add_argument("paths", nargs="*", metavar="PATH",
                   help="only these files, or the files under these directories (filesystem "
                   "paths inside a library)")
    p.add_argument("--library", metavar="L", help="only this library")
    presence = p.add_mutually_exclusive_group()
    presence.add_argument("--missing", dest="presence", action="store_const", const="missing",
                          help="only files marked missing")
    presence.add_argument("--all", dest="presence", action="store_const", const="all",
                          help="present and missing files")
    p.add_argument("--tag", metavar="T", help="only files carrying the tag T")
    p.add_argument("--hash", metavar="H",
                   help="only files with this content hash (xxh128: and 32 hex digits)")
    p.add_argument("--errors", action="store_true",
                   help="only files an enricher failed on (a current error insight), with the "
                   "enricher and its message; JSON lines gain \"errors\": [{\"enricher\", "
                   "\"error\"}]")
    p.add_argument("--json", action="store_true", help="print JSON Lines, one file a line")
    p.set_defaults(handler=cmd_files, presence="present")

    p = add_command(sub, common, "config", "check the config",
                    "Commands about the config file.")
    config_sub = p.add_subparsers(dest="config_command", metavar="SUBCOMMAND",
                                  title="subcommands")
    config_sub.required = True
    p = add_command(
        config_sub, common, "check", "validate the config and print what it would do",
        "Validate the config file (exit 2 with one line naming the file and key if anything "
        "is wrong) and print what assetd would do with it: the database, the timings, each "
        "library (online or offline and why, how changes are noticed, excludes) and each "
        "enricher.",
    )
    p.set_defaults(handler=cmd_config_check)


def cmd_scan(ctx) -> int:
    from daemon.libraries import check_owned
    from daemon.scan.scanner import ScanOptions, scan

    args = ctx.args
    options = ScanOptions(dry_run=args.dry_run, hash_files=not args.no_hash,
                          allow_mass_missing=args.allow_mass_missing,
                          sniff=not args.no_enrich and not args.dry_run,
                          settle_parts=not args.no_enrich and not args.dry_run)
    check_owned(ctx.store, ctx.config, args.libraries)
    progress = None
    if sys.stderr.isatty() and not args.json:
        progress = TtyProgress(libraries=_libraries_in_scope(ctx.config, args))
    try:
        report = scan(ctx.store, ctx.config, args.libraries, args.path, options=options,
                      progress=progress)
        if not args.no_enrich and not args.dry_run:
            _enrich_after_scan(ctx, report, progress)
        if not args.dry_run:
            _settle_scanned(ctx, report)
    finally:
        if progress is not None:
            progress.close()
    if args.json:
        print_json(report.as_json())
    else:
        _print_scan(report)
    return scan_exit_code(report)


def _libraries_in_scope(config, args) -> list[str]:
    """The libraries the scan will go through, in its order (for the progress line)."""
    from daemon.libraries import resolve_path, select_libraries

    names = [lib.name for lib in select_libraries(config, args.libraries)]
    if args.path:
        scoped = {resolve_path(config, path)[0].name for path in args.path}
        names = [name for name in names if name in scoped]
    return names


def _enrich_after_scan(ctx, report: ScanReport, progress: TtyProgress | None) -> None:
    """Enrichers run on content they have not seen, for the libraries that were scanned."""
    from daemon.meta import enrich

    for lib in report.libraries:
        if not lib.online:
            continue
        on_file = None
        if progress is not None:
            progress.enriching(lib.name, *enrich.pending_estimate(ctx.store, ctx.config,
                                                                  lib.name))
            on_file = progress.enriched_file
        enrich.enrich_libraries(ctx.store, ctx.config, [lib.name], on_file=on_file)


def _settle_scanned(ctx, report: ScanReport) -> None:
    """The scanned files whose enrichers are all satisfied are `ready` when scan returns."""
    from daemon import reconcile
    from daemon.libraries import resolve_path

    scopes: dict[str, list[bytes]] = {}
    for path in ctx.args.path or []:
        library, rel = resolve_path(ctx.config, path)
        scopes.setdefault(library.name, []).append(rel)
    for lib in report.libraries:
        if lib.online:
            reconcile.settle_scanned(ctx.store, ctx.config, lib.name, scopes.get(lib.name))


def scan_exit_code(report: ScanReport) -> int:
    return {"offline": EXIT_OFFLINE, "partial": EXIT_FAILURES}.get(report.status, EXIT_OK)


def _print_scan(report: ScanReport) -> None:
    for lib in report.libraries:
        if not lib.online:
            print(f"{lib.name}: offline: {display_text(lib.reason or 'unknown reason')}")
            continue
        s = lib.stats
        print(
            f"{lib.name}: {plural(s['discovered'], 'file')}: {s['created']:,} new, "
            f"{s['updated']:,} changed, {s['unchanged']:,} unchanged, {s['moved']:,} moved, "
            f"{s['missing']:,} missing, {s['restored']:,} restored; {s['hashed']:,} hashed, "
            f"{plural(s['errors'], 'error')}"
        )
        for error in lib.errors:
            print(f"  error: {display_path(error.rel_path)}: {display_text(error.error)}")
    dry = " (dry run: nothing written)" if report.dry_run else ""
    print(f"{report.status} in {report.duration_s:.1f}s{dry}")


def cmd_status(ctx) -> int:
    from daemon.reports import status_report

    report = status_report(ctx.store, ctx.config)
    if ctx.args.json:
        print_json(report.as_json())
        return EXIT_OK
    print(f"database: {report.database}")
    for lib in report.libraries:
        state = "online" if lib.online else f"offline ({lib.reason or 'unknown'})"
        print(
            f"{lib.name}: {lib.path} on {lib.host}: {state}; {plural(lib.files, 'file')}, "
            f"{lib.missing:,} missing, {lib.unhashed:,} not hashed yet; "
            f"last scan {lib.last_scan or 'never'}"
            + (f"; watch {lib.watch} ({lib.watch_reason})" if lib.watch else "")
            + (f", {lib.inotify_watches:,} inotify watches" if lib.inotify_watches else "")
        )
    if not report.daemons:
        print("daemons: none running")
    for d in report.daemons:
        print(f"daemon {d.host} pid {d.pid}: started {d.started_at}, "
              f"last tick {d.last_tick or 'none yet'} {d.status}".rstrip())
    return EXIT_OK


def cmd_files(ctx) -> int:
    from daemon.libraries import resolve_path
    from daemon.reports import FileFilter, list_files

    args = ctx.args
    scopes = tuple((library.name, rel_path) for library, rel_path in
                   (resolve_path(ctx.config, path) for path in args.paths))
    rows = list_files(ctx.store, FileFilter(library=args.library, presence=args.presence,
                                            tag=args.tag, content_hash=args.hash,
                                            scopes=scopes, errors=args.errors))
    unmatched = dict(zip(args.paths, scopes, strict=True))
    for row in rows:
        if unmatched:
            unmatched = {path: scope for path, scope in unmatched.items()
                         if not row.in_scope(*scope)}
        if args.json:
            print_json(row.as_json())
            continue
        flag = f"missing since {iso_utc(row.missing_since)}" if row.missing else row.state
        tags = f"  [{', '.join(display_text(t) for t in row.tags)}]" if row.tags else ""
        print(f"{row.library}/{display_path(row.rel_path)}\t{human_bytes(row.size)}\t"
              f"{(row.content_hash or 'unhashed')}\t{flag}{tags}")
        for enricher, message in row.errors or ():
            print(f"  {enricher}: {display_text(message)}")
    for path in unmatched:
        print(f"assetd: {path}: no indexed file matches (with these options)", file=sys.stderr)
    return EXIT_FAILURES if unmatched else EXIT_OK


def _mounts_or_none() -> list[Mount] | None:
    """The mount table read once for every library (None: each library says why not)."""
    from daemon.mounts import read_mounts

    try:
        return read_mounts()
    except OSError:
        return None


def cmd_config_check(ctx) -> int:
    from daemon.meta.enrichers import enricher_notes
    from daemon.meta.external import missing_executable
    from daemon.mounts import choose_watch_mode, max_user_watches
    from daemon.scan.probe import probe
    from daemon.store.db import describe_index

    config = ctx.config
    d = config.daemon
    problems = [
        f"{config.source}: enricher {enricher.name!r}: command: {problem}"
        for enricher in config.enrichers
        if not enricher.builtin and (problem := missing_executable(enricher))
    ]
    print(f"config: {config.source}: {'ok' if not problems else 'problems below'}")
    try:
        print(f"database: {describe_index(d.database)}")
    except OSError as exc:  # an OperationalError (unreachable) is the CLI's exit 3
        problems.append(f"{ctx.database_source}: {exc}")
    print(f"host: {d.host}")
    print(
        f"tick every {human_duration(d.tick_interval_s)}, full rescan every "
        f"{human_duration(d.full_rescan_interval_s)}, hash budget "
        f"{human_duration(d.hash_budget_s)} per library per tick, settle "
        f"{human_duration(d.settle_s)}, mass-missing threshold {d.mass_missing_threshold:g}"
    )
    print(f"logs: {d.log_format} at {d.log_level} to {d.log_file or 'stderr'}")
    print(f"http: GET /metrics and /health on {d.listen}" if d.listen else
          "http: off (set listen to serve /metrics and /health)")
    if not config.libraries:
        print("no libraries configured: the daemon would index nothing")
    print(f"inotify: fs.inotify.max_user_watches = {max_user_watches() or 'unknown'} "
          "(one watch per directory of the inotify libraries)")
    mounts = _mounts_or_none()
    for lib in config.libraries:
        probed = probe(lib)
        state = "online" if probed.online else f"OFFLINE: {probed.reason}"
        watch_mode = choose_watch_mode(lib, mounts)
        mode = f"{watch_mode.name} ({watch_mode.reason})"
        extras = [f"exclude {list(lib.exclude)}"] if lib.exclude else []
        if lib.marker:
            extras.append(f"online only while {lib.marker} exists")
        if lib.require_mount:
            extras.append("online only while a mount point")
        if lib.follow_symlinks:
            extras.append("follows symlinks")
        print(f"library {lib.name}: {lib.path}: {state}; watch {mode}"
              + "".join("; " + e for e in extras))
    for enricher in config.enrichers:
        kind = "built-in" if enricher.builtin else "command " + " ".join(enricher.command)
        print(f"enricher {enricher.name}: {kind}; match {list(enricher.match)}"
              + ("" if enricher.builtin else f"; timeout {human_duration(enricher.timeout_s)}")
              + "".join("; " + note for note in enricher_notes(enricher)))
    for problem in problems:
        print(f"assetd: {problem}", file=sys.stderr)
    return EXIT_USAGE if problems else EXIT_OK
