"""`library adopt`."""

from __future__ import annotations

import argparse

from daemon.errors import EXIT_OK, UsageError


def register(sub: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    from daemon.cli import add_command

    p = add_command(
        sub, common, "library", "library commands (ownership between hosts)",
        "Commands about a library as a whole.",
    )
    library_sub = p.add_subparsers(dest="library_command", metavar="COMMAND", title="commands")
    library_sub.required = True
    p = add_command(
        library_sub, common, "adopt", "move another host's library to this host",
        "A library belongs to the host that first indexed it; on a shared PostgreSQL index, "
        "`scan` and `run` on another host refuse it. `adopt` makes this host (the config's "
        "[daemon] host) its owner, with the root this host's config gives it; its files, "
        "tags and insights are kept. The next scan on this host compares the disk with them; "
        "the previous owner's scans and daemon then refuse the library.",
    )
    p.add_argument("name", metavar="NAME",
                   help="the library's name, as in this host's config and `assetd status`")
    p.set_defaults(handler=cmd_library_adopt)


def cmd_library_adopt(ctx) -> int:
    from daemon.libraries import select_libraries
    from daemon.store import queries

    [library] = select_libraries(ctx.config, [ctx.args.name])
    host = ctx.config.daemon.host
    previous = queries.adopt_library(ctx.store, library, host)
    if previous is None:
        raise UsageError(f"library {library.name} is not in the index yet: `assetd scan "
                         f"{library.name}` indexes it for this host")
    if previous.host == host:
        print(f"library {library.name} already belongs to host {host}")
    else:
        print(f"library {library.name}: moved from host {previous.host} to {host} "
              f"(root {library.path})")
    return EXIT_OK
