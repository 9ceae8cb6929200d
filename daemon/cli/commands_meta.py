"""`tag`, `insight`, `dupes`, `reconcile`, `verify`, `prune` (metadata keyed by content)."""

from __future__ import annotations

import argparse
import sys
from typing import TYPE_CHECKING

from daemon.cli.output import display_path, display_text, json_line, print_json, print_json_lines
from daemon.errors import EXIT_FAILURES, EXIT_OFFLINE, EXIT_OK, UsageError
from daemon.units import human_bytes, plural

if TYPE_CHECKING:
    from daemon.meta.verify import VerifyReport

DEFAULT_PRUNE_AGE = "30d"
DEFAULT_SIMILAR_DISTANCE = 6  # bits of the 64-bit perceptual hash


PATH_HELP = "a file inside a library (a filesystem path; the file must have been indexed)"
TAG_HELP = ("a tag: any non-empty text without surrounding spaces, tabs or newlines "
            "(e.g. holiday, 2024/trip); several may be given")


def register(sub: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    from daemon.cli import add_command

    _register_tag(sub, common)
    _register_insight(sub, common)

    p = add_command(sub, common, "dupes", "groups of present files sharing a hash",
                    "Groups of two or more present files with the same content hash, largest "
                    "first; each group's size and hash, then its files, one a line.")
    p.add_argument("--library", metavar="L", help="only compare this library's files")
    p.add_argument("--similar", action="store_true",
                   help="group images that look alike (perceptual hash), not identical bytes")
    p.add_argument("--distance", metavar="N", type=int, default=DEFAULT_SIMILAR_DISTANCE,
                   help="with --similar: at most N of the 64 hash bits differ "
                   "(default: %(default)s)")
    p.add_argument("--json", action="store_true", help="print JSON Lines, one group a line")
    p.set_defaults(handler=cmd_dupes)

    p = add_command(sub, common, "reconcile", "run the reconcile passes once",
                    "Run the reconciliation passes once (null_hash_fill: tags and insights "
                    "set while a file's hash was unknown get the hash; insight_collapse: one "
                    "current insight per content and kind; lifecycle: files whose enrichers "
                    "all have a result become ready) and report the rows each changed. A "
                    "second run changes nothing.")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.set_defaults(handler=cmd_reconcile)

    p = add_command(sub, common, "verify", "re-hash files to find bit rot",
                    "Re-read every hashed file whose size and mtime are unchanged and report "
                    "those whose bytes no longer match the stored hash. The stored hash is "
                    "never changed.",
                    "Exit status: 1 on a mismatch (it outranks an offline library); else 3 if "
                    "a library was offline; else 1 if a file could not be read; else 0.")
    p.add_argument("libraries", nargs="*", metavar="LIB",
                   help="names of libraries to verify (default: every configured library)")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.set_defaults(handler=cmd_verify)

    p = add_command(sub, common, "prune", "hard-delete long-missing files",
                    "Delete the rows of files missing for longer than --older-than, then the "
                    "tags and insights no file refers to any more. The only command that "
                    "deletes rows.")
    p.add_argument("--older-than", metavar="DUR", default=DEFAULT_PRUNE_AGE,
                   help=f"missing for longer than this (default {DEFAULT_PRUNE_AGE}; "
                   "e.g. 12h, 7d; 0 means every missing file)")
    p.add_argument("--dry-run", action="store_true", help="count what would go, delete nothing")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.set_defaults(handler=cmd_prune)


def _register_tag(sub: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    from daemon.cli import add_command

    p = add_command(sub, common, "tag", "tag files (tags follow the content)",
                    "Tags belong to a file's content: a moved, copied or edited file keeps "
                    "them, and every copy of the same bytes carries them.")
    tag_sub = p.add_subparsers(dest="tag_command", metavar="SUBCOMMAND", title="subcommands")
    tag_sub.required = True
    p = add_command(tag_sub, common, "add", "add tags to a file's content",
                    "Tag the content of the file at PATH (its path while it is not hashed "
                    "yet). Every indexed copy of the same bytes carries the tags too; the "
                    "output says how many files that is. Adding a tag the file already "
                    "carries does nothing.")
    p.add_argument("path", metavar="PATH", help=PATH_HELP)
    p.add_argument("tags", nargs="+", metavar="TAG", help=TAG_HELP)
    p.set_defaults(handler=cmd_tag_add)
    p = add_command(tag_sub, common, "rm", "remove tags from a file's content",
                    "Remove tags from the content of the file at PATH: every indexed copy of "
                    "the same bytes loses them too; the output says how many files that is. "
                    "A tag the file does not carry is named on stderr (exit 0).")
    p.add_argument("path", metavar="PATH", help=PATH_HELP)
    p.add_argument("tags", nargs="+", metavar="TAG", help="a tag to remove; several may be given")
    p.set_defaults(handler=cmd_tag_rm)
    p = add_command(tag_sub, common, "ls", "a file's tags, or every tag",
                    "With PATH: that file's tags, one a line. Without: every tag with the "
                    "number of present files carrying it.")
    p.add_argument("path", nargs="?", metavar="PATH",
                   help="the file whose tags to list (default: list every tag)")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(handler=cmd_tag_ls)


def _register_insight(sub: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    from daemon.cli import add_command

    p = add_command(sub, common, "insight", "derived data about a file's content",
                    "Insights are data about a file's content, kept per content hash and "
                    "kind: what the enrichers found (kind = the enricher's name: mime, "
                    "image, ...) or what a user or script stored.")
    insight_sub = p.add_subparsers(dest="insight_command", metavar="SUBCOMMAND",
                                   title="subcommands")
    insight_sub.required = True
    p = add_command(insight_sub, common, "set", "store a user insight",
                    "Store JSON as the current insight of KIND for the content of the file at "
                    "PATH (source `user`); the previous one of that kind becomes history. "
                    "A user insight whose KIND is an enricher's name stands in for that "
                    "enricher.",
                    "Example: assetd insight set /srv/photos/a.jpg rating '{\"stars\": 4}'")
    p.add_argument("path", metavar="PATH", help=PATH_HELP)
    p.add_argument("kind", metavar="KIND",
                   help="what the insight is about: letters, digits and _ . : / - "
                   "(e.g. rating, caption, mime)")
    p.add_argument("value", metavar="JSON",
                   help="the value, one JSON document (quote it for the shell: "
                   "'{\"stars\": 4}', '\"text\"', 42)")
    p.set_defaults(handler=cmd_insight_set)
    p = add_command(insight_sub, common, "show", "a file's insights",
                    "The current insights of the content of the file at PATH, one a line: "
                    "kind, JSON value, source and when it was generated.")
    p.add_argument("path", metavar="PATH", help=PATH_HELP)
    p.add_argument("--history", action="store_true",
                   help="also the older insights that were replaced (history)")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.set_defaults(handler=cmd_insight_show)


def cmd_tag_add(ctx) -> int:
    from daemon.meta import tags
    from daemon.meta.indexed import find_file

    file = find_file(ctx.store, ctx.config, ctx.args.path)
    added = tags.add_tags(ctx.store, file, ctx.args.tags)
    what = ", ".join(added) or "nothing (already tagged)"
    print(f"{_file_name(file)}: added {what}; {_carriers(ctx, file)}")
    return EXIT_OK


def cmd_tag_rm(ctx) -> int:
    from daemon.meta import tags
    from daemon.meta.indexed import find_file

    file = find_file(ctx.store, ctx.config, ctx.args.path)
    removed = tags.remove_tags(ctx.store, file, ctx.args.tags)
    print(f"{_file_name(file)}: removed {', '.join(removed) or 'nothing'}; "
          f"{_carriers(ctx, file)}")
    absent = [t for t in dict.fromkeys(ctx.args.tags) if t not in removed]
    if absent:
        print(f"assetd: not tagged: {', '.join(absent)}", file=sys.stderr)
    return EXIT_OK


def _file_name(file) -> str:
    return f"{file.library}/{display_path(file.rel_path)}"


def _carriers(ctx, file) -> str:
    """How many indexed files a tag change on `file` applies to (copies included)."""
    from daemon.meta import tags

    present, missing = tags.content_carriers(ctx.store, file)
    total = present + missing
    if file.content_hash is None:
        return f"{plural(total, 'indexed file')} (not hashed yet: the tags are on its path)"
    verb = "carries" if total == 1 else "carry"
    extra = f" ({missing:,} of them missing)" if missing else ""
    return f"{plural(total, 'indexed file')} {verb} this content{extra}"


def cmd_tag_ls(ctx) -> int:
    from daemon.meta import tags
    from daemon.meta.indexed import find_file

    if ctx.args.path is None:
        counts = tags.tag_counts(ctx.store)
        if ctx.args.json:
            print_json(counts)
        else:
            for entry in counts:
                print(f"{display_text(entry['tag'])}\t{entry['files']}")
        return EXIT_OK
    file = find_file(ctx.store, ctx.config, ctx.args.path)
    file_tags = tags.file_tags(ctx.store, file)
    if ctx.args.json:
        print_json({"library": file.library, "path": file.path_text, "tags": file_tags})
    else:
        for tag in file_tags:
            print(display_text(tag))
    return EXIT_OK


def cmd_insight_set(ctx) -> int:
    from daemon.meta import insights
    from daemon.meta.indexed import find_file

    file = find_file(ctx.store, ctx.config, ctx.args.path)
    insights.set_user_insight(ctx.store, file, ctx.args.kind, ctx.args.value)
    return EXIT_OK


def cmd_insight_show(ctx) -> int:
    from daemon.meta import insights
    from daemon.meta.indexed import find_file

    file = find_file(ctx.store, ctx.config, ctx.args.path)
    rows = insights.file_insights(ctx.store, file, history=ctx.args.history)
    if ctx.args.json:
        print_json({"library": file.library, "path": file.path_text, "hash": file.content_hash,
                    "insights": rows})
        return EXIT_OK
    print(f"{_file_name(file)}\t{file.content_hash or 'unhashed'}")
    for row in rows:
        old = "" if row["is_current"] else " (history)"
        print(f"{row['kind']}{old}: {json_line(row['value'])}"
              f"\t{row['source']}, {row['generated_at']}")
    return EXIT_OK


def cmd_dupes(ctx) -> int:
    from daemon.meta import dupes

    if ctx.args.similar:
        return _similar_dupes(ctx)
    groups = dupes.duplicate_groups(ctx.store, ctx.args.library)
    if ctx.args.json:
        print_json_lines(group.as_json() for group in groups)
        return EXIT_OK
    for group in groups:
        print(f"{group.content_hash}\t{human_bytes(group.size)} x {len(group.files)}")
        for library, rel_path in group.files:
            print(f"  {library}/{display_path(rel_path)}")
    return EXIT_OK


def _similar_dupes(ctx) -> int:
    from daemon.meta import dupes

    groups = dupes.similar_groups(ctx.store, ctx.args.library, ctx.args.distance)
    if ctx.args.json:
        print_json_lines(groups)
        return EXIT_OK
    for group in groups:
        print(f"{len(group['files'])} similar images")
        for entry in group["files"]:
            print(f"  {entry['phash']}  {entry['library']}/{display_text(entry['path'])}")
    return EXIT_OK


def cmd_reconcile(ctx) -> int:
    from daemon.reconcile import run_passes

    passes = run_passes(ctx.store, ctx.config)
    if ctx.args.json:
        print_json({"passes": passes, "changes": sum(passes.values())})
    else:
        print(", ".join(f"{name}: {count}" for name, count in passes.items())
              + f"; {sum(passes.values())} changes")
    return EXIT_OK


def cmd_verify(ctx) -> int:
    from daemon.meta import verify

    report = verify.verify(ctx.store, ctx.config, ctx.args.libraries)
    if ctx.args.json:
        print_json(report.as_json())
    else:
        _print_verify(report)
    if report.mismatches:
        return EXIT_FAILURES  # rot outranks an offline disk: it must not be masked
    if report.offline:
        return EXIT_OFFLINE
    return EXIT_FAILURES if report.errors else EXIT_OK


def _print_verify(report: VerifyReport) -> None:
    for m in report.mismatches:
        print(f"MISMATCH {m.library}/{display_path(m.rel_path)}: expected {m.expected}, "
              f"read {m.actual}")
    for e in report.errors + report.offline:
        where = e.library if e.rel_path is None else f"{e.library}/{display_path(e.rel_path)}"
        print(f"error: {where}: {display_text(e.error)}")
    if report.mismatches:
        outcome = "MISMATCH"
    elif report.offline:
        outcome = "incomplete (offline: " + ", ".join(e.library for e in report.offline) + ")"
    elif report.errors:
        outcome = f"incomplete ({plural(len(report.errors), 'file')} could not be read)"
    else:
        outcome = "ok"
    print(f"{outcome}: {plural(report.checked, 'file')} checked, "
          f"{plural(len(report.mismatches), 'mismatch')}")


def cmd_prune(ctx) -> int:
    from daemon.config import parse_duration
    from daemon.meta import prune

    try:
        older_than_s = parse_duration(ctx.args.older_than)
    except ValueError as exc:
        raise UsageError(f"--older-than: {exc}") from None
    result = prune.prune(ctx.store, older_than_s, dry_run=ctx.args.dry_run)
    if ctx.args.json:
        print_json(result._asdict())
    else:
        verb = "would delete" if result.dry_run else "deleted"
        print(f"{verb} {plural(result.files, 'file')}, {plural(result.tags, 'tag')}, "
              f"{plural(result.insights, 'insight')}")
    return EXIT_OK
