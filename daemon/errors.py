"""Errors the CLI turns into one line on stderr and an exit code."""

EXIT_OK = 0
EXIT_FAILURES = 1  # some files failed, or verify found mismatches
EXIT_USAGE = 2  # usage or config error
EXIT_OFFLINE = 3  # a library in scope was offline, or the database could not be reached


def describe_os_error(exc: OSError) -> str:
    """How a per-file error is reported: `PermissionError: Permission denied`."""
    return f"{type(exc).__name__}: {exc.strerror or exc}"


class UsageError(Exception):
    """A request that cannot be carried out as asked: one line, exit 2."""
