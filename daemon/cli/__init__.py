"""`assetd`: argument parsing, config lookup, and turning errors into one line + exit code.

Each command lives in a module of this package that registers its subparsers and calls one
service; nothing below the CLI prints.

Start-up time is part of the interface (scripts call `assetd` in loops): building the parser
imports no service, and each handler imports what its command needs, so `assetd --help` never
loads the database driver and `assetd status` never loads the scanner or the enrichers.
tests/cli/test_startup_imports.py holds the list of what each command must not import.
"""

from __future__ import annotations

import argparse
import sys
import textwrap
from collections.abc import Callable
from typing import TYPE_CHECKING

from daemon import __version__, logs
from daemon.errors import (
    EXIT_FAILURES,
    EXIT_INTERRUPTED,
    EXIT_OFFLINE,
    EXIT_TERMINATED,
    EXIT_USAGE,
    UsageError,
    database_error_text,
)

if TYPE_CHECKING:
    from daemon.config import Config
    from daemon.store import Store


class Context:
    """What a command handler gets: its arguments, the config, and the store on demand."""

    def __init__(self, args: argparse.Namespace, config: Config):
        self.args = args
        self.config = config
        self._store: Store | None = None

    @property
    def store(self) -> Store:
        """The index; only `scan` and `run` may create it."""
        if self._store is None:
            from daemon.store import Store

            self._store = Store(self.config.daemon.database, host=self.config.daemon.host,
                                create=self.args.command in CREATING_COMMANDS)
        return self._store

    def adopt_store(self, store: Store) -> None:
        """A store opened by the command itself (`run` waits for the database), closed at exit."""
        self._store = store

    @property
    def database_source(self) -> str:
        """Where the database URL came from, for errors: `--db` or the config key."""
        return database_source(self.args, self.config)

    def close(self) -> None:
        if self._store is not None:
            self._store.close()


Handler = Callable[[Context], int]
CREATING_COMMANDS = ("scan", "run")


def database_source(args: argparse.Namespace, config: Config) -> str:
    return "--db" if args.db else f"daemon.database in {config.source}"


GLOBAL_OPTIONS = ("--config", "--db", "--log-format", "--log-level")
GLOBAL_OPTIONS_NOTE = (
    "Global options (--config, --db, --log-format, --log-level) go before the command: "
    "see `assetd --help`."
)
STATES_HELP = (
    "A present file's state: new (indexed, content not hashed or not yet looked at by the "
    "enrichers), enriching (hashed; enrichers still to run on its content), ready (every "
    "enricher that matches it has a result for its content). A content change sends a file "
    "back to new; a change to the enricher config sends ready files back to enriching."
)


def _global_options(parser: argparse.ArgumentParser, *, hidden: bool) -> None:
    """The options every command takes.

    They are documented once, in `assetd --help` (as git and sqlite-utils do). The subcommands
    accept them too, hidden from their help, so `assetd scan --config X` keeps working.
    """
    default = argparse.SUPPRESS if hidden else None

    def describe(text: str) -> str:
        return argparse.SUPPRESS if hidden else text

    parser.add_argument("--config", metavar="PATH", default=default,
                        help=describe("config file (default: $ASSETD_CONFIG, "
                                      "$XDG_CONFIG_HOME/assetd/config.toml, "
                                      "/etc/assetd/config.toml)"))
    parser.add_argument("--db", metavar="URL", default=default,
                        help=describe("database URL, overrides [daemon].database "
                                      "(sqlite:////path/index.db or postgresql://user@host/db)"))
    parser.add_argument("--log-format", choices=("json", "console", "auto"), default=default,
                        help=describe("log format (default: the config's log_format)"))
    parser.add_argument("--log-level", choices=logs.LEVEL_NAMES, default=default,
                        help=describe("log level; one-shot commands default to warning, `run` "
                                      "to the config's log_level; debug also prints tracebacks"))


class _Formatter(argparse.HelpFormatter):
    """Wraps each paragraph (blank-line separated) of descriptions and epilogs on its own."""

    def _fill_text(self, text: str, width: int, indent: str) -> str:
        return "\n\n".join(
            textwrap.fill(" ".join(paragraph.split()), width, initial_indent=indent,
                          subsequent_indent=indent)
            for paragraph in text.split("\n\n")
        )


def add_command(sub: argparse._SubParsersAction, common: argparse.ArgumentParser, name: str,
                summary: str, description: str, epilog: str = "") -> argparse.ArgumentParser:
    """A (sub)command: `summary` for the list in its parent's help, `description` for its own."""
    return sub.add_parser(
        name, parents=[common], help=summary, description=description,
        epilog=(epilog + "\n\n" if epilog else "") + GLOBAL_OPTIONS_NOTE,
        formatter_class=_Formatter,
    )


# The module that registers each command. A command line that names one builds only that
# module's parsers: all thirteen commands' cost ~57M instructions, 0.4x the bare interpreter,
# on every `assetd status`. `--help`, `--version`, no command or an unknown one build them all
# (tests/cli/test_help.py checks this table against the modules).
COMMAND_MODULES = {
    "run": "commands_run", "scan": "commands_index", "status": "commands_index",
    "files": "commands_index", "config": "commands_index", "tag": "commands_meta",
    "insight": "commands_meta", "dupes": "commands_meta", "reconcile": "commands_meta",
    "verify": "commands_meta", "prune": "commands_meta", "changes": "commands_changes",
    "library": "commands_library",
}
_ALL_MODULES = tuple(dict.fromkeys(COMMAND_MODULES.values()))


def command_modules(argv: list[str] | None) -> tuple[str, ...]:
    """The command modules to register for parsing `argv` (None: all of them)."""
    for i, arg in enumerate(argv or ()):
        if arg in ("-h", "--") or (arg.startswith("--") and "--help".startswith(arg)):
            break  # help, or positional arguments only: all of them
        if arg.startswith("-"):
            continue  # a global option's value is skipped below
        previous = argv[i - 1] if i else ""
        takes_value = previous.startswith("--") and "=" not in previous and len(previous) > 2 \
            and any(option.startswith(previous) for option in GLOBAL_OPTIONS)
        if takes_value:
            continue
        module = COMMAND_MODULES.get(arg)
        return (module,) if module else _ALL_MODULES
    return _ALL_MODULES


def build_parser(argv: list[str] | None = None) -> argparse.ArgumentParser:
    """The parser: with `argv`, only what parsing it needs (`command_modules`)."""
    import importlib

    parser = argparse.ArgumentParser(
        prog="assetd",
        description="Index the files under a set of library roots and keep the index true "
        "while files are added, changed, moved, deleted, and while disks go offline.",
        epilog="File states: " + STATES_HELP + "\n\n"
        "Exit codes: 0 ok; 1 some files failed (or verify found mismatches); "
        "2 usage or config error; 3 a library in scope was offline, or the database "
        "could not be reached; 130 interrupted (Ctrl-C); 143 stopped by SIGTERM.\n\n"
        "`assetd COMMAND --help` explains a command. The full reference: "
        "docs/reference.md.",
        formatter_class=_Formatter,
    )
    parser.add_argument("--version", action="version", version=f"assetd {__version__}",
                        help="print the version and exit")
    _global_options(parser, hidden=False)
    common = argparse.ArgumentParser(add_help=False)
    _global_options(common, hidden=True)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", title="commands")
    sub.required = True
    for name in command_modules(argv):
        importlib.import_module(f"daemon.cli.{name}").register(sub, common)
    return parser


def load_cli_config(args: argparse.Namespace) -> Config:
    from daemon.config import empty_config, find_config_path, load_config

    path = find_config_path(args.config)
    if path is None:
        if args.db:
            return empty_config(args.db)
        raise UsageError(
            "no config file found (looked at $ASSETD_CONFIG, $XDG_CONFIG_HOME/assetd/config.toml, "
            "/etc/assetd/config.toml); pass --config PATH"
        )
    config = load_config(path)
    if args.db:
        config = _with_database(config, args.db)
    return config


def _with_database(config: Config, url: str) -> Config:
    from dataclasses import replace

    return replace(config, daemon=replace(config.daemon, database=url))


def main(argv: list[str] | None = None) -> int:
    return run_command(_parse(argv))


def _parse(argv: list[str] | None) -> argparse.Namespace:
    argv = sys.argv[1:] if argv is None else argv
    return build_parser(argv).parse_args(argv)


def program() -> int:
    """The `assetd` process (console script, `python -m daemon`): `main`, and after a
    one-shot command an exit without the interpreter's teardown.

    That teardown frees every object and module one at a time, which the kernel does at
    once when the process ends: 20-40 ms of a no-change `assetd scan` of 100k files
    (~0.45 s in all), paid by every script that calls assetd in a loop. By then the command
    has closed the store (`run_command`) and reaped its walkers and hash workers; only the
    buffered output is left to flush. The daemon (`run`), or a command that left a thread
    running, ends the ordinary way.
    """
    args = _parse(None)
    code = run_command(args)
    if args.command != "run":
        exit_now(code)
    return code


def exit_now(code: int) -> None:
    """Flush stdout and stderr and end the process with `code`, skipping the interpreter's
    teardown, where that loses nothing: no other thread is running (it would not be
    waited for). Returns otherwise."""
    import os
    import threading

    if threading.active_count() != 1:
        return
    try:
        sys.stdout.flush()
        sys.stderr.flush()
    except BrokenPipeError:
        pass  # the reader left: as `run_command` treats it
    os._exit(code)


class Terminated(BaseException):
    """SIGTERM, raised in the main thread as Ctrl-C raises KeyboardInterrupt.

    Killed outright, a scan would leave its hash workers and walkers behind, blocked for
    good on pipes nobody reads (holding the caller's stdout open): raised instead, it
    unwinds like Ctrl-C, so the pool and the walkers are stopped, what was committed (the
    parts a long scan already applied) stays, and the process exits 143. A BaseException,
    so that no `except Exception` on the way takes it for an error.
    """


def _raise_terminated(_signum: int, _frame: object) -> None:
    raise Terminated


def run_command(args: argparse.Namespace) -> int:
    """Run the parsed command; its errors become one line on stderr and an exit code."""
    import signal

    from daemon.config import ConfigError
    from daemon.store import NoIndexError, OperationalError
    from daemon.store.db import DatabaseUrlError
    from daemon.store.migrations import SchemaTooNewError

    debug = args.log_level == "debug"
    context = None
    # The daemon has its own stop (service/runner.py); the handler is put back on return
    # for a caller that runs commands in its own process (the tests).
    previous = (signal.getsignal(signal.SIGTERM) if args.command == "run"
                else signal.signal(signal.SIGTERM, _raise_terminated))
    try:
        config = load_cli_config(args)
        is_daemon = args.command == "run"
        logs.configure(
            level=args.log_level or (config.daemon.log_level if is_daemon else "warning"),
            fmt=args.log_format or config.daemon.log_format,
            log_file=config.daemon.log_file if is_daemon else "",
        )
        context = Context(args, config)
        return args.handler(context)
    except ConfigError as exc:
        return _fail(str(exc), EXIT_USAGE)
    except (UsageError, DatabaseUrlError, SchemaTooNewError, NoIndexError) as exc:
        return _fail(str(exc), EXIT_USAGE)
    except OperationalError as exc:
        # Refused, timed out, shutting down, locked past the busy timeout: not the user's
        # usage, and worth retrying (exit 3). psycopg2 never puts the password in its text.
        source = database_source(args, context.config) if context else "the database"
        return _fail(f"database error ({source}): {database_error_text(exc)}",
                     EXIT_OFFLINE, debug=debug)
    except KeyboardInterrupt:
        return _fail("interrupted", EXIT_INTERRUPTED)
    except Terminated:
        return _fail("terminated (SIGTERM)", EXIT_TERMINATED)
    except BrokenPipeError:
        return 0
    except Exception as exc:
        return _fail(
            f"internal error: {type(exc).__name__}: {exc} "
            "(run with --log-level debug for a traceback)", EXIT_FAILURES, debug=debug,
        )
    finally:
        if context is not None:
            context.close()
        signal.signal(signal.SIGTERM, previous)


def _fail(message: str, code: int, *, debug: bool = False) -> int:
    if debug:
        import traceback

        traceback.print_exc()
    one_line = " ".join(part.strip() for part in message.splitlines() if part.strip())
    print(f"assetd: {one_line}", file=sys.stderr)
    return code
