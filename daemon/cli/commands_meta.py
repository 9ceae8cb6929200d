"""`tag`, `insight`, `dupes`, `reconcile`, `verify`, `prune` (metadata keyed by content)."""

from __future__ import annotations

import argparse
import json
import sys

from daemon.cli.output import print_json, print_json_lines
from daemon.config import parse_duration
from daemon.errors import EXIT_FAILURES, EXIT_OFFLINE, EXIT_OK, UsageError
from daemon.meta import dupes, insights, prune, tags, verify
from daemon.meta.indexed import find_file
from daemon.reconcile import run_passes
from daemon.units import human_bytes

DEFAULT_PRUNE_AGE = "30d"


def register(sub: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    _register_tag(sub, common)
    _register_insight(sub, common)

    p = sub.add_parser("dupes", parents=[common], help="groups of present files sharing a hash",
                       description="Groups of two or more present files with the same content "
                       "hash, largest first.")
    p.add_argument("--library", metavar="L", help="only compare this library's files")
    p.add_argument("--similar", action="store_true",
                   help="group images that look alike (perceptual hash), not identical bytes")
    p.add_argument("--distance", metavar="N", type=int, default=dupes.DEFAULT_SIMILAR_DISTANCE,
                   help="with --similar: at most N of the 64 hash bits differ "
                   "(default: %(default)s)")
    p.add_argument("--json", action="store_true", help="print JSON Lines, one group a line")
    p.set_defaults(handler=cmd_dupes)

    p = sub.add_parser("reconcile", parents=[common], help="run the reconcile passes once",
                       description="Run the reconciliation passes once (NULL-hash fill, "
                       "insight collapse, lifecycle) and report the rows each changed.")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.set_defaults(handler=cmd_reconcile)

    p = sub.add_parser("verify", parents=[common], help="re-hash files to find bit rot",
                       description="Re-read every hashed file whose size and mtime are "
                       "unchanged and report those whose bytes no longer match the stored hash. "
                       "The stored hash is never changed. Exit 1 on a mismatch.")
    p.add_argument("libraries", nargs="*", metavar="LIB", help="library names (default: all)")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.set_defaults(handler=cmd_verify)

    p = sub.add_parser("prune", parents=[common], help="hard-delete long-missing files",
                       description="Delete the rows of files missing for longer than "
                       "--older-than, then the tags and insights no file refers to any more. "
                       "The only command that deletes rows.")
    p.add_argument("--older-than", metavar="DUR", default=DEFAULT_PRUNE_AGE,
                   help=f"missing for longer than this (default {DEFAULT_PRUNE_AGE}; "
                   "e.g. 12h, 7d)")
    p.add_argument("--dry-run", action="store_true", help="count what would go, delete nothing")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.set_defaults(handler=cmd_prune)


def _register_tag(sub: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    p = sub.add_parser("tag", parents=[common], help="tag files (tags follow the content)",
                       description="Tags belong to a file's content: a moved, copied or "
                       "edited file keeps them.")
    tag_sub = p.add_subparsers(dest="tag_command", metavar="SUBCOMMAND")
    tag_sub.required = True
    for name, handler, verb in (("add", cmd_tag_add, "add"), ("rm", cmd_tag_rm, "remove")):
        p = tag_sub.add_parser(name, parents=[common], help=f"{verb} tags of a file")
        p.add_argument("path", metavar="PATH", help="a file inside a library")
        p.add_argument("tags", nargs="+", metavar="TAG")
        p.set_defaults(handler=handler)
    p = tag_sub.add_parser("ls", parents=[common], help="a file's tags, or every tag",
                           description="With PATH: that file's tags, one a line. Without: "
                           "every tag with the number of present files carrying it.")
    p.add_argument("path", nargs="?", metavar="PATH")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(handler=cmd_tag_ls)


def _register_insight(sub: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    p = sub.add_parser("insight", parents=[common], help="derived data about a file's content")
    insight_sub = p.add_subparsers(dest="insight_command", metavar="SUBCOMMAND")
    insight_sub.required = True
    p = insight_sub.add_parser("set", parents=[common], help="store a user insight",
                               description="Store JSON as the current insight of KIND for the "
                               "file's content (source `user`); the previous one becomes history.")
    p.add_argument("path", metavar="PATH", help="a file inside a library")
    p.add_argument("kind", metavar="KIND")
    p.add_argument("value", metavar="JSON")
    p.set_defaults(handler=cmd_insight_set)
    p = insight_sub.add_parser("show", parents=[common], help="a file's insights")
    p.add_argument("path", metavar="PATH", help="a file inside a library")
    p.add_argument("--history", action="store_true", help="also the demoted ones")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.set_defaults(handler=cmd_insight_show)


def cmd_tag_add(ctx) -> int:
    file = find_file(ctx.store, ctx.config, ctx.args.path)
    added = tags.add_tags(ctx.store, file, ctx.args.tags)
    what = ", ".join(added) or "nothing (already tagged)"
    print(f"{file.library}/{file.path_text}: added {what}")
    return EXIT_OK


def cmd_tag_rm(ctx) -> int:
    file = find_file(ctx.store, ctx.config, ctx.args.path)
    removed = tags.remove_tags(ctx.store, file, ctx.args.tags)
    print(f"{file.library}/{file.path_text}: removed {', '.join(removed) or 'nothing'}")
    absent = [t for t in dict.fromkeys(ctx.args.tags) if t not in removed]
    if absent:
        print(f"assetd: not tagged: {', '.join(absent)}", file=sys.stderr)
    return EXIT_OK


def cmd_tag_ls(ctx) -> int:
    if ctx.args.path is None:
        counts = tags.tag_counts(ctx.store)
        if ctx.args.json:
            print_json(counts)
        else:
            for entry in counts:
                print(f"{entry['tag']}\t{entry['files']}")
        return EXIT_OK
    file = find_file(ctx.store, ctx.config, ctx.args.path)
    file_tags = tags.file_tags(ctx.store, file)
    if ctx.args.json:
        print_json({"library": file.library, "path": file.path_text, "tags": file_tags})
    else:
        for tag in file_tags:
            print(tag)
    return EXIT_OK


def cmd_insight_set(ctx) -> int:
    file = find_file(ctx.store, ctx.config, ctx.args.path)
    insights.set_user_insight(ctx.store, file, ctx.args.kind, ctx.args.value)
    return EXIT_OK


def cmd_insight_show(ctx) -> int:
    file = find_file(ctx.store, ctx.config, ctx.args.path)
    rows = insights.file_insights(ctx.store, file, history=ctx.args.history)
    if ctx.args.json:
        print_json({"library": file.library, "path": file.path_text, "hash": file.content_hash,
                    "insights": rows})
        return EXIT_OK
    print(f"{file.library}/{file.path_text}\t{file.content_hash or 'unhashed'}")
    for row in rows:
        old = "" if row["is_current"] else " (history)"
        print(f"{row['kind']}{old}: {json.dumps(row['value'], ensure_ascii=False)}"
              f"\t{row['source']}, {row['generated_at']}")
    return EXIT_OK


def cmd_dupes(ctx) -> int:
    if ctx.args.similar:
        return _similar_dupes(ctx)
    groups = dupes.duplicate_groups(ctx.store, ctx.args.library)
    if ctx.args.json:
        print_json_lines(groups)
        return EXIT_OK
    for group in groups:
        print(f"{group['hash']}\t{human_bytes(group['size'])} x {len(group['files'])}")
        for entry in group["files"]:
            print(f"  {entry['library']}/{entry['path']}")
    return EXIT_OK


def _similar_dupes(ctx) -> int:
    groups = dupes.similar_groups(ctx.store, ctx.args.library, ctx.args.distance)
    if ctx.args.json:
        print_json_lines(groups)
        return EXIT_OK
    for group in groups:
        print(f"{len(group['files'])} similar images")
        for entry in group["files"]:
            print(f"  {entry['phash']}  {entry['library']}/{entry['path']}")
    return EXIT_OK


def cmd_reconcile(ctx) -> int:
    passes = run_passes(ctx.store, ctx.config)
    if ctx.args.json:
        print_json({"passes": passes, "changes": sum(passes.values())})
    else:
        print(", ".join(f"{name}: {count}" for name, count in passes.items())
              + f"; {sum(passes.values())} changes")
    return EXIT_OK


def cmd_verify(ctx) -> int:
    report = verify.verify(ctx.store, ctx.config, ctx.args.libraries)
    if ctx.args.json:
        print_json(report.as_json())
    else:
        for m in report.mismatches:
            print(f"MISMATCH {m['library']}/{m['path']}: expected {m['expected']}, "
                  f"read {m['actual']}")
        for e in report.errors + report.offline:
            where = f"{e['library']}/{e['path']}" if e["path"] else e["library"]
            print(f"error: {where}: {e['error']}")
        print(f"{report.status}: {report.checked:,} files checked, "
              f"{len(report.mismatches):,} mismatches")
    if report.mismatches:
        return EXIT_FAILURES  # rot outranks an offline disk: it must not be masked
    if report.offline:
        return EXIT_OFFLINE
    return EXIT_FAILURES if report.errors else EXIT_OK


def cmd_prune(ctx) -> int:
    try:
        older_than_s = parse_duration(ctx.args.older_than)
    except ValueError as exc:
        raise UsageError(f"--older-than: {exc}") from None
    result = prune.prune(ctx.store, older_than_s, dry_run=ctx.args.dry_run)
    if ctx.args.json:
        print_json(result._asdict())
    else:
        verb = "would delete" if result.dry_run else "deleted"
        print(f"{verb} {result.files:,} files, {result.tags:,} tags, "
              f"{result.insights:,} insights")
    return EXIT_OK
