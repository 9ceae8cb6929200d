"""`scan`, `status`, `files`, `config check`."""

from __future__ import annotations

import argparse
import sys

from daemon.cli.output import (
    TtyProgress,
    human_duration,
    print_json,
    print_json_lines,
)
from daemon.errors import EXIT_FAILURES, EXIT_OFFLINE, EXIT_OK
from daemon.reports import FileFilter, list_files, public, status_report
from daemon.scan.probe import probe
from daemon.scan.scanner import ScanOptions, ScanReport, scan
from daemon.store import redact_url
from daemon.units import human_bytes


def register(sub: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    p = sub.add_parser(
        "scan", parents=[common], help="one-shot scan of the libraries in scope",
        description="Scan libraries (all, the named ones, or one directory with --path): "
        "index new files, hash new and changed ones, notice moves, mark vanished files missing "
        "(never deleting their rows), and run the enrichers on content they have not seen. "
        "An offline library is reported and left untouched. Does not run the reconcile passes.",
    )
    p.add_argument("libraries", nargs="*", metavar="LIB", help="library names (default: all)")
    p.add_argument("--path", action="append", default=[], metavar="DIR",
                   help="scan only this file or directory (inside a library; repeatable)")
    p.add_argument("--dry-run", action="store_true",
                   help="compute the same stats, write nothing")
    p.add_argument("--no-hash", action="store_true",
                   help="do not read file contents (changed files get a NULL hash)")
    p.add_argument("--no-enrich", action="store_true", help="do not run the enrichers")
    p.add_argument("--allow-mass-missing", action="store_true",
                   help="mark files missing even when more than mass_missing_threshold of a "
                   "library vanished")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.set_defaults(handler=cmd_scan)

    p = sub.add_parser("status", parents=[common], help="libraries and running daemons",
                       description="Libraries (online, file counts, last scan) and the daemons "
                       "using this database (host, pid, last tick).")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.set_defaults(handler=cmd_status)

    p = sub.add_parser("files", parents=[common], help="list indexed files",
                       description="List indexed files (present ones by default).")
    p.add_argument("--library", metavar="L", help="only this library")
    presence = p.add_mutually_exclusive_group()
    presence.add_argument("--missing", dest="presence", action="store_const", const="missing",
                          help="only files marked missing")
    presence.add_argument("--all", dest="presence", action="store_const", const="all",
                          help="present and missing files")
    p.add_argument("--tag", metavar="T", help="only files carrying this tag")
    p.add_argument("--hash", metavar="H", help="only files with this content hash")
    p.add_argument("--json", action="store_true", help="print JSON Lines, one file a line")
    p.set_defaults(handler=cmd_files, presence="present")

    p = sub.add_parser("config", parents=[common], help="config commands")
    config_sub = p.add_subparsers(dest="config_command", metavar="SUBCOMMAND")
    config_sub.required = True
    p = config_sub.add_parser("check", parents=[common],
                              help="validate the config and print what it would do")
    p.set_defaults(handler=cmd_config_check)


def cmd_scan(ctx) -> int:
    args = ctx.args
    options = ScanOptions(dry_run=args.dry_run, hash_files=not args.no_hash,
                          allow_mass_missing=args.allow_mass_missing,
                          sniff=not args.no_enrich and not args.dry_run)
    progress = TtyProgress() if sys.stderr.isatty() and not args.json else None
    try:
        report = scan(ctx.store, ctx.config, args.libraries, args.path, options=options,
                      progress=progress)
        if not args.no_enrich and not args.dry_run:
            _enrich_after_scan(ctx, report)
    finally:
        if progress is not None:
            progress.close()
    if args.json:
        print_json(report.as_json())
    else:
        _print_scan(report)
    return scan_exit_code(report)


def _enrich_after_scan(ctx, report: ScanReport) -> None:
    """Enrichers run on content they have not seen, for the libraries that were scanned."""
    from daemon.meta import enrich

    names = [lib.name for lib in report.libraries if lib.online]
    enrich.enrich_libraries(ctx.store, ctx.config, names)


def scan_exit_code(report: ScanReport) -> int:
    return {"offline": EXIT_OFFLINE, "partial": EXIT_FAILURES}.get(report.status, EXIT_OK)


def _print_scan(report: ScanReport) -> None:
    for lib in report.libraries:
        if not lib.online:
            print(f"{lib.name}: offline: {lib.reason}")
            continue
        s = lib.stats
        print(
            f"{lib.name}: {s['discovered']:,} files: {s['created']:,} new, "
            f"{s['updated']:,} changed, {s['unchanged']:,} unchanged, {s['moved']:,} moved, "
            f"{s['missing']:,} missing, {s['restored']:,} restored; {s['hashed']:,} hashed, "
            f"{s['errors']:,} errors"
        )
        for error in lib.errors:
            print(f"  error: {error['path']}: {error['error']}")
    dry = " (dry run: nothing written)" if report.dry_run else ""
    print(f"{report.status} in {report.duration_s:.1f}s{dry}")


def cmd_status(ctx) -> int:
    report = status_report(ctx.store, ctx.config)
    if ctx.args.json:
        print_json({
            "database": report["database"],
            "libraries": [public(lib) for lib in report["libraries"]],
            "daemons": [public(d) for d in report["daemons"]],
        })
        return EXIT_OK
    print(f"database: {report['database']}")
    for lib in report["libraries"]:
        state = "online" if lib["online"] else f"offline ({lib['_reason'] or 'unknown'})"
        print(
            f"{lib['name']}: {lib['path']} on {lib['host']}: {state}; {lib['files']:,} files, "
            f"{lib['missing']:,} missing, {lib['unhashed']:,} unhashed; "
            f"last scan {lib['last_scan'] or 'never'}"
        )
    if not report["daemons"]:
        print("daemons: none running")
    for d in report["daemons"]:
        print(f"daemon {d['host']} pid {d['pid']}: started {d['started_at']}, "
              f"last tick {d['last_tick'] or 'none yet'} {d['_status']}".rstrip())
    return EXIT_OK


def cmd_files(ctx) -> int:
    args = ctx.args
    rows = list_files(ctx.store, FileFilter(library=args.library, presence=args.presence,
                                            tag=args.tag, content_hash=args.hash))
    if args.json:
        print_json_lines(rows)
        return EXIT_OK
    for row in rows:
        flag = f"missing since {row['missing_since']}" if row["missing"] else row["state"]
        tags = f"  [{', '.join(row['tags'])}]" if row["tags"] else ""
        print(f"{row['library']}/{row['path']}\t{human_bytes(row['size'])}\t"
              f"{(row['hash'] or 'unhashed')}\t{flag}{tags}")
    return EXIT_OK


def cmd_config_check(ctx) -> int:
    config = ctx.config
    d = config.daemon
    print(f"config: {config.source}: ok")
    print(f"database: {redact_url(d.database)}")
    print(f"host: {d.host}")
    print(
        f"tick every {human_duration(d.tick_interval_s)}, full rescan every "
        f"{human_duration(d.full_rescan_interval_s)}, hash budget "
        f"{human_duration(d.hash_budget_s)} per library per tick, settle "
        f"{human_duration(d.settle_s)}, mass-missing threshold {d.mass_missing_threshold:g}"
    )
    print(f"logs: {d.log_format} at {d.log_level} to {d.log_file or 'stderr'}")
    if not config.libraries:
        print("no libraries configured: the daemon would index nothing")
    for lib in config.libraries:
        probed = probe(lib)
        state = "online" if probed.online else f"OFFLINE: {probed.reason}"
        mode = "inotify watch" if lib.watch else "periodic scans only (watch = false)"
        extras = [f"exclude {list(lib.exclude)}"] if lib.exclude else []
        if lib.marker:
            extras.append(f"online only while {lib.marker} exists")
        if lib.require_mount:
            extras.append("online only while a mount point")
        if lib.follow_symlinks:
            extras.append("follows symlinks")
        print(f"library {lib.name}: {lib.path}: {state}; {mode}"
              + "".join("; " + e for e in extras))
    for enricher in config.enrichers:
        kind = "built-in" if enricher.builtin else "command " + " ".join(enricher.command)
        print(f"enricher {enricher.name}: {kind}; match {list(enricher.match)}"
              + ("" if enricher.builtin else f"; timeout {human_duration(enricher.timeout_s)}"))
    return EXIT_OK
