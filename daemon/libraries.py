"""Which library a filesystem path belongs to, and the libraries a command is about."""

from __future__ import annotations

import os

from daemon.config import Config, LibraryConfig
from daemon.errors import UsageError
from daemon.store import Store


def _relative_to(path: str, root: str) -> str | None:
    root = root.rstrip("/") or "/"
    if path == root:
        return ""
    prefix = root if root.endswith("/") else root + "/"
    return path[len(prefix):] if path.startswith(prefix) else None


def resolve_path(config: Config, path: str) -> tuple[LibraryConfig, bytes]:
    """(library, rel_path bytes) for a path inside a configured library root.

    The last component is not resolved (a symlink inside a library is its own entry), but
    the directories above it are, so a root reached through a symlink still matches.
    """
    absolute = os.path.abspath(path)
    real = os.path.join(os.path.realpath(os.path.dirname(absolute)), os.path.basename(absolute))
    for library in config.libraries:
        for candidate, root in ((absolute, library.path), (real, os.path.realpath(library.path))):
            rel = _relative_to(os.path.normpath(candidate), root)
            if rel is not None:
                return library, os.fsencode(rel)
    raise UsageError(f"{path}: not inside any configured library")


def select_libraries(config: Config, names: list[str]) -> list[LibraryConfig]:
    if not names:
        return list(config.libraries)
    selected = []
    for name in names:
        library = config.library(name)
        if library is None:
            known = ", ".join(lib.name for lib in config.libraries) or "none configured"
            raise UsageError(f"unknown library {name!r} (known: {known})")
        selected.append(library)
    return selected


class LibraryOwnedError(UsageError):
    """A library in scope belongs to another host of a shared (PostgreSQL) index."""


def check_owned(store: Store, config: Config, names: list[str] | None = None) -> None:
    """Refuse, before changing anything, to scan or watch another host's library.

    Two hosts naming one library would repoint it back and forth, each marking the other's
    files missing. A SQLite index belongs to one machine, so there a renamed host simply
    takes its libraries over (see `queries.ensure_library`).
    """
    if store.is_sqlite:
        return
    # Here, not at the top: `files` and `tag` resolve paths through this module and need
    # none of the queries (nor the scan's plan and walk, which they import).
    from daemon.store import queries

    names = [lib.name for lib in select_libraries(config, names)]
    for row in queries.foreign_libraries(names, config.daemon.host):
        raise LibraryOwnedError(
            f"library {row.name} belongs to host {row.host} (root {row.root}), not "
            f"{config.daemon.host}: run `assetd library adopt {row.name}` on this host to "
            "move it here"
        )
