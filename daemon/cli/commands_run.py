"""`run`: the daemon (foreground; systemd runs it). The service lives in daemon/service/."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING

from daemon import logs

if TYPE_CHECKING:
    from daemon.config import Config


def register(sub: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    from daemon.cli import add_command

    p = add_command(
        sub, common, "run", "the daemon (foreground; systemd runs it)",
        "Watch every library and keep the index true: scan them at startup, index changes as "
        "they happen (inotify, or polling for `watch = false`), and every tick_interval "
        "backfill hashes, run the enrichers and the reconcile passes, and re-probe offline "
        "libraries. SIGHUP reloads the config and reopens log_file; SIGTERM/SIGINT finish the "
        "current batch and exit 0. Under systemd (Type=notify) it reports READY=1, STATUS= "
        "progress and WATCHDOG=1. Logs at the config's log_level.",
    )
    p.set_defaults(handler=cmd_run)


def cmd_run(ctx) -> int:
    from daemon.service.runner import open_store_waiting, run

    store = open_store_waiting(ctx.config.daemon.database, ctx.config.daemon.host)
    if store is None:  # SIGTERM while the database was down
        return 0
    ctx.adopt_store(store)
    return run(store, ctx.config, reload_config=lambda: _reload_config(ctx.args))


def _reload_config(args: argparse.Namespace) -> Config:
    """SIGHUP: the config read as at startup (--config, --db), and logging set up from it."""
    from daemon.cli import load_cli_config

    config = load_cli_config(args)
    logs.configure(
        level=args.log_level or config.daemon.log_level,
        fmt=args.log_format or config.daemon.log_format,
        log_file=config.daemon.log_file,
    )
    return config
