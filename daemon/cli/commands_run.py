"""`run`: the daemon. Until the daemon lands this scans every library once and exits."""

from __future__ import annotations

import argparse

from daemon.cli.commands_index import scan_exit_code
from daemon.scan.scanner import scan


def register(sub: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    p = sub.add_parser("run", parents=[common], help="the daemon (foreground)",
                       description="PLACEHOLDER: scans every library once and exits; the "
                       "watching daemon is not implemented yet.")
    p.set_defaults(handler=cmd_run)


def cmd_run(ctx) -> int:
    return scan_exit_code(scan(ctx.store, ctx.config, [], []))
