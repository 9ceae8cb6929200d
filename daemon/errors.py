"""Errors the CLI turns into one line on stderr and an exit code."""

EXIT_OK = 0
EXIT_FAILURES = 1  # some files failed, or verify found mismatches
EXIT_USAGE = 2  # usage or config error
EXIT_OFFLINE = 3  # a library in scope was offline, or the database could not be reached
EXIT_INTERRUPTED = 130  # SIGINT (Ctrl-C), as shells report it: 128 + the signal's number
EXIT_TERMINATED = 143  # SIGTERM (one-shot commands; the daemon exits 0)


def describe_os_error(exc: OSError) -> str:
    """How a per-file error is reported: `PermissionError: Permission denied`."""
    return f"{type(exc).__name__}: {exc.strerror or exc}"


class UsageError(Exception):
    """A request that cannot be carried out as asked: one line, exit 2."""


def database_error_text(exc: BaseException) -> str:
    """One line for a database error, naming its first cause.

    On SQLITE_FULL SQLite rolls the transaction back itself, and the rollback that follows
    raises "cannot rollback - no transaction is active", hiding "database or disk is full":
    the first database error of the chain is the one that says what happened.
    """
    first = exc
    cause = exc.__context__
    while cause is not None:
        if type(cause).__module__.split(".")[0] in ("sqlite3", "psycopg2", "peewee"):
            first = cause
        cause = cause.__context__
    return " ".join(str(first).split())
