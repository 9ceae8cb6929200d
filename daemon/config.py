"""TOML config → frozen dataclasses.

Every error is a `ConfigError` that names the file and the key (`library[1].path`) so the CLI
can print one line and exit 2. Nothing here touches the database or the libraries' disks:
a library whose root is missing is *offline*, not a config error (USB disks get unplugged).
"""

from __future__ import annotations

import os
import re
import socket
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

LIBRARY_NAME_RE = re.compile(r"^[a-z0-9_-]+$")
LOG_FORMATS = ("json", "console", "auto")
UNIX_LISTEN_PREFIX = "unix:"
LOG_LEVELS = ("debug", "info", "warning", "error", "critical")
BUILTIN_ENRICHERS = ("mime", "image", "phash", "audio", "video")
# Every path: the media built-ins choose their files by content (daemon/meta/content.py).
DEFAULT_ENRICHER_MATCH = {name: ("*",) for name in BUILTIN_ENRICHERS}
_DURATION_RE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d|w)?\s*$")
_DURATION_UNITS_S = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
# "50MB/s" is 50 * 1000**2 bytes per second (disks are sold in decimal units), "50MiB/s" is
# 50 * 1024**2; a lowercase "b" would be bits, which no one means for a read budget.
_RATE_RE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(?:([kKMGT])(i?))?B/s\s*$")
_RATE_POWERS = {"k": 1, "K": 1, "M": 2, "G": 3, "T": 4}
DEFAULT_VERIFY_INTERVAL_S = 30 * 86400.0
DEFAULT_VERIFY_RATE = 50e6  # bytes per second: "50MB/s"


class ConfigError(Exception):
    """A config problem, already phrased as the one line the user sees."""

    def __init__(self, file: str, key: str | None, problem: str):
        self.file, self.key, self.problem = file, key, problem
        where = f"{file}: {key}: " if key else f"{file}: "
        super().__init__(_printable(where + problem))


def _printable(text: str) -> str:
    """One line whatever the file holds: a key or value with a line break or another
    character that does not print (U+0085 splits a line for many readers) is escaped."""
    if text.isprintable():
        return text
    return "".join(ch if ch.isprintable() else ascii(ch)[1:-1] for ch in text)


@dataclass(frozen=True)
class DaemonConfig:
    database: str
    host: str
    tick_interval_s: float = 60.0
    full_rescan_interval_s: float = 6 * 3600.0
    hash_budget_s: float = 20.0
    settle_s: float = 0.2
    mass_missing_threshold: float = 0.5
    log_format: str = "auto"
    log_level: str = "info"
    log_file: str = ""
    listen: str = ""  # "" (off), "HOST:PORT" or "unix:/abs/path.sock"
    change_retention_s: float | None = 30 * 86400.0  # None: the change feed keeps everything
    verify_interval_s: float | None = DEFAULT_VERIFY_INTERVAL_S  # None: no scheduled verify
    verify_rate: float = DEFAULT_VERIFY_RATE  # bytes per second


@dataclass(frozen=True)
class LibraryConfig:
    name: str
    path: str
    exclude: tuple[str, ...] = ()
    watch: str = "auto"  # auto | inotify (watch = true) | polling (watch = false)
    marker: str = ""
    require_mount: bool = False
    follow_symlinks: bool = False


@dataclass(frozen=True)
class EnricherConfig:
    name: str
    match: tuple[str, ...]
    command: tuple[str, ...] = ()
    timeout_s: float = 30.0
    enabled: bool = True

    @property
    def builtin(self) -> bool:
        return not self.command


@dataclass(frozen=True)
class Config:
    source: str
    daemon: DaemonConfig
    libraries: tuple[LibraryConfig, ...] = ()
    enrichers: tuple[EnricherConfig, ...] = field(default_factory=tuple)

    def library(self, name: str) -> LibraryConfig | None:
        return next((lib for lib in self.libraries if lib.name == name), None)


def parse_duration(value: Any) -> float:
    """Seconds from a number or a string like "250ms", "30s", "10m", "6h", "30d"."""
    if isinstance(value, bool):
        raise ValueError("expected a duration, got a boolean")
    if isinstance(value, int | float):
        if value < 0:
            raise ValueError("must not be negative")
        return float(value)
    if isinstance(value, str):
        match = _DURATION_RE.match(value)
        if match:
            return float(match.group(1)) * _DURATION_UNITS_S[match.group(2) or "s"]
        raise ValueError(f"not a duration: {value!r} (use seconds or e.g. '250ms', '30s', '6h')")
    raise ValueError(f"expected a duration, got {type(value).__name__}")


def parse_rate(value: Any) -> float:
    """Bytes per second from a number or a string like "500KB/s", "50MB/s", "50MiB/s"."""
    if isinstance(value, bool):
        raise ValueError("expected a rate, got a boolean")
    if isinstance(value, int | float):
        rate = float(value)
    elif isinstance(value, str) and (match := _RATE_RE.match(value)):
        number, prefix, binary = match.groups()
        rate = float(number) * ((1024 if binary else 1000) ** _RATE_POWERS.get(prefix, 0))
    elif isinstance(value, str):
        raise ValueError(f"not a rate: {value!r} (use bytes per second, e.g. '50MB/s' for "
                         "50 * 1000^2 or '50MiB/s' for 50 * 1024^2)")
    else:
        raise ValueError(f"expected a rate, got {type(value).__name__}")
    if rate <= 0:
        raise ValueError("must be positive")
    return rate


def default_database_url() -> str:
    """SQLite under systemd's StateDirectory, else under the XDG state home."""
    state_dir = os.environ.get("STATE_DIRECTORY", "").split(":")[0]
    if not state_dir:
        xdg = os.environ.get("XDG_STATE_HOME") or os.path.expanduser("~/.local/state")
        state_dir = os.path.join(xdg, "assetd")
    return "sqlite:///" + os.path.join(state_dir, "index.db")


def find_config_path(explicit: str | None) -> str | None:
    """The contract's lookup order: --config, $ASSETD_CONFIG, XDG, /etc."""
    if explicit:
        return explicit
    if os.environ.get("ASSETD_CONFIG"):
        return os.environ["ASSETD_CONFIG"]
    xdg = os.environ.get("XDG_CONFIG_HOME") or os.path.expanduser("~/.config")
    for candidate in (os.path.join(xdg, "assetd", "config.toml"), "/etc/assetd/config.toml"):
        if os.path.isfile(candidate):
            return candidate
    return None


def load_config(path: str) -> Config:
    try:
        with open(path, "rb") as f:
            raw = tomllib.load(f)
    except FileNotFoundError:
        raise ConfigError(path, None, "config file not found") from None
    except IsADirectoryError:
        raise ConfigError(path, None, "is a directory, expected a TOML file") from None
    except PermissionError:
        raise ConfigError(path, None, "permission denied reading the config file") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(path, None, f"invalid TOML: {exc}") from None
    except UnicodeDecodeError as exc:  # TOML is UTF-8; tomllib does not say so itself
        raise ConfigError(path, None, f"invalid TOML: not UTF-8 (byte {exc.start})") from None
    return parse_config(raw, path)


def empty_config(database: str | None = None) -> Config:
    """Used when no config file exists but `--db` names the database."""
    daemon = DaemonConfig(database=database or default_database_url(), host=socket.gethostname())
    return Config(source="<none>", daemon=daemon, enrichers=_with_builtins(()))


def parse_config(raw: dict[str, Any], source: str) -> Config:
    reader = _Reader(source)
    reader.only_keys(raw, "", {"daemon", "library", "enricher"})
    base = Path(os.path.abspath(source)).parent
    daemon = _parse_daemon(reader, raw.get("daemon", {}), base)
    libraries = tuple(
        _parse_library(reader, entry, f"library[{i}]", base)
        for i, entry in enumerate(reader.table_list(raw, "library"))
    )
    _check_libraries(reader, libraries)
    enrichers = tuple(
        _parse_enricher(reader, entry, f"enricher[{i}]")
        for i, entry in enumerate(reader.table_list(raw, "enricher"))
    )
    names = [e.name for e in enrichers]
    for i, name in enumerate(names):
        if name in names[:i]:
            raise ConfigError(source, f"enricher[{i}].name", f"duplicate enricher name {name!r}")
    return Config(
        source=source,
        daemon=daemon,
        libraries=libraries,
        enrichers=_with_builtins(enrichers),
    )


def _with_builtins(enrichers: tuple[EnricherConfig, ...]) -> tuple[EnricherConfig, ...]:
    """Built-in enrichers are on unless an `[[enricher]]` of that name says `enabled = false`."""
    configured = {e.name for e in enrichers}
    defaults = tuple(
        EnricherConfig(name=name, match=DEFAULT_ENRICHER_MATCH[name])
        for name in BUILTIN_ENRICHERS
        if name not in configured
    )
    return tuple(e for e in defaults + enrichers if e.enabled)


class _Reader:
    """Typed access to a TOML table that names `file: key` in every error."""

    def __init__(self, source: str):
        self.source = source

    def fail(self, key: str, problem: str) -> ConfigError:
        return ConfigError(self.source, key, problem)

    def only_keys(self, table: dict[str, Any], prefix: str, allowed: set[str]) -> None:
        for key in table:
            if key not in allowed:
                allowed_list = ", ".join(sorted(allowed))
                raise self.fail(prefix + key, f"unknown key (allowed: {allowed_list})")

    def table_list(self, raw: dict[str, Any], key: str) -> list[dict[str, Any]]:
        value = raw.get(key, [])
        if not isinstance(value, list) or not all(isinstance(v, dict) for v in value):
            raise self.fail(key, f"expected [[{key}]] tables")
        return value

    def get(self, table: dict[str, Any], prefix: str, key: str, kind: type | tuple, default: Any):
        if key not in table:
            if default is _REQUIRED:
                raise self.fail(prefix + key, "missing required key")
            return default
        value = table[key]
        kinds = kind if isinstance(kind, tuple) else (kind,)
        if isinstance(value, bool) and bool not in kinds:
            raise self.fail(prefix + key, f"expected {_kind_name(kinds)}, got boolean")
        if not isinstance(value, kinds):
            raise self.fail(
                prefix + key, f"expected {_kind_name(kinds)}, got {_toml_type(value)} {value!r}"
            )
        return value

    def duration(self, table: dict[str, Any], prefix: str, key: str, default: float) -> float:
        if key not in table:
            return default
        try:
            return parse_duration(table[key])
        except ValueError as exc:
            raise self.fail(prefix + key, str(exc)) from None

    def string_list(self, table: dict[str, Any], prefix: str, key: str, default: tuple) -> tuple:
        value = self.get(table, prefix, key, list, list(default))
        for i, item in enumerate(value):
            if not isinstance(item, str):
                raise self.fail(f"{prefix}{key}[{i}]", f"expected string, got {_toml_type(item)}")
        return tuple(value)


_REQUIRED = object()


def _kind_name(kinds: tuple) -> str:
    names = {str: "string", bool: "boolean", int: "integer", float: "number", list: "array"}
    return " or ".join(dict.fromkeys(names.get(k, k.__name__) for k in kinds))


def _toml_type(value: Any) -> str:
    return {str: "string", bool: "boolean", int: "integer", float: "float", list: "array",
            dict: "table"}.get(type(value), type(value).__name__)


def _parse_daemon(reader: _Reader, table: Any, base: Path) -> DaemonConfig:
    if not isinstance(table, dict):
        raise reader.fail("daemon", "expected a [daemon] table")
    p = "daemon."
    reader.only_keys(table, p, {
        "database", "host", "tick_interval", "full_rescan_interval", "hash_budget", "settle",
        "mass_missing_threshold", "log_format", "log_level", "log_file", "listen",
        "change_retention", "verify_interval", "verify_rate",
    })
    database = reader.get(table, p, "database", str, "") or default_database_url()
    if not database.startswith(("sqlite://", "postgresql://", "postgres://")):
        raise reader.fail(p + "database", "expected sqlite:///PATH or postgresql://... URL")
    if database.startswith("sqlite:///") and not database.startswith("sqlite:////"):
        # Like every other path in the file, a relative database path is relative to it.
        database = "sqlite:///" + os.path.normpath(base / database[len("sqlite:///"):])
    threshold = reader.get(table, p, "mass_missing_threshold", (int, float), 0.5)
    if not 0 < threshold <= 1:
        raise reader.fail(p + "mass_missing_threshold", "must be a fraction in (0, 1]")
    log_format = reader.get(table, p, "log_format", str, "auto")
    if log_format not in LOG_FORMATS:
        raise reader.fail(p + "log_format", f"must be one of {', '.join(LOG_FORMATS)}")
    log_level = reader.get(table, p, "log_level", str, "info").lower()
    if log_level not in LOG_LEVELS:
        raise reader.fail(p + "log_level", f"must be one of {', '.join(LOG_LEVELS)}")
    log_file = reader.get(table, p, "log_file", str, "")
    tick = reader.duration(table, p, "tick_interval", 60.0)
    if tick <= 0:
        raise reader.fail(p + "tick_interval", "must be positive")
    return DaemonConfig(
        database=database,
        host=reader.get(table, p, "host", str, "") or socket.gethostname(),
        tick_interval_s=tick,
        full_rescan_interval_s=reader.duration(table, p, "full_rescan_interval", 6 * 3600.0),
        hash_budget_s=reader.duration(table, p, "hash_budget", 20.0),
        settle_s=reader.duration(table, p, "settle", 0.2),
        mass_missing_threshold=float(threshold),
        log_format=log_format,
        log_level=log_level,
        log_file=os.path.normpath(base / log_file) if log_file else "",
        listen=_parse_listen(reader, reader.get(table, p, "listen", str, ""), base),
        change_retention_s=_parse_retention(reader, table, p),
        verify_interval_s=_parse_verify_interval(reader, table),
        verify_rate=_parse_verify_rate(reader, table),
    )


def _parse_retention(reader: _Reader, table: dict[str, Any], p: str) -> float | None:
    """`change_retention`: a positive duration, or "" to keep every change."""
    if table.get("change_retention") == "":
        return None
    retention = reader.duration(table, p, "change_retention", 30 * 86400.0)
    if retention <= 0:
        raise reader.fail(p + "change_retention",
                          'must be positive (or "" to keep every change)')
    return retention


def _parse_verify_interval(reader: _Reader, table: dict[str, Any]) -> float | None:
    """A duration, or "" for no scheduled verify."""
    if table.get("verify_interval") == "":
        return None
    interval_s = reader.duration(table, "daemon.", "verify_interval", DEFAULT_VERIFY_INTERVAL_S)
    if interval_s <= 0:
        raise reader.fail("daemon.verify_interval",
                          'must be positive (use "" to turn the scheduled verify off)')
    return interval_s


def _parse_verify_rate(reader: _Reader, table: dict[str, Any]) -> float:
    try:
        return parse_rate(table.get("verify_rate", DEFAULT_VERIFY_RATE))
    except ValueError as exc:
        raise reader.fail("daemon.verify_rate", str(exc)) from None


def _parse_listen(reader: _Reader, value: str, base: Path) -> str:
    """"" (off), "HOST:PORT" (IPv6 as "[::1]:9469"), or "unix:PATH" (relative to the file)."""
    if not value:
        return ""
    if value.startswith(UNIX_LISTEN_PREFIX):
        path = value[len(UNIX_LISTEN_PREFIX):]
        if not path:
            raise reader.fail("daemon.listen", "expected unix:/path/to/socket")
        return UNIX_LISTEN_PREFIX + os.path.normpath(base / os.path.expanduser(path))
    host, _, port = value.rpartition(":")
    if not host or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise reader.fail("daemon.listen",
                          f'expected "HOST:PORT" (e.g. "127.0.0.1:9469") or "unix:PATH", '
                          f"got {value!r}")
    return value


def _parse_library(reader: _Reader, table: dict[str, Any], prefix: str, base: Path):
    p = prefix + "."
    reader.only_keys(table, p, {
        "name", "path", "exclude", "watch", "marker", "require_mount", "follow_symlinks",
    })
    name = reader.get(table, p, "name", str, _REQUIRED)
    if not LIBRARY_NAME_RE.match(name):
        raise reader.fail(p + "name", f"{name!r} must match [a-z0-9_-]+")
    path = reader.get(table, p, "path", str, _REQUIRED)
    if not path:
        raise reader.fail(p + "path", "must not be empty")
    marker = reader.get(table, p, "marker", str, "")
    if "/" in marker:
        raise reader.fail(p + "marker", "must be a file name in the root, not a path")
    return LibraryConfig(
        name=name,
        path=os.path.normpath(os.path.join(base, os.path.expanduser(path))),
        exclude=reader.string_list(table, p, "exclude", ()),
        watch=_parse_watch(reader, table, p),
        marker=marker,
        require_mount=reader.get(table, p, "require_mount", bool, False),
        follow_symlinks=reader.get(table, p, "follow_symlinks", bool, False),
    )


def _parse_watch(reader: _Reader, table: dict[str, Any], prefix: str) -> str:
    """`watch = "auto"` (the default), `true` (inotify) or `false` (polling)."""
    value = table.get("watch", "auto")
    if isinstance(value, bool):
        return "inotify" if value else "polling"
    if value != "auto":
        raise reader.fail(prefix + "watch",
                          f'expected "auto", true or false, got {_toml_type(value)} {value!r}')
    return value


def _check_libraries(reader: _Reader, libraries: tuple[LibraryConfig, ...]) -> None:
    for i, lib in enumerate(libraries):
        for j, other in enumerate(libraries[:i]):
            if lib.name == other.name:
                raise reader.fail(f"library[{i}].name", f"duplicate library name {lib.name!r}")
            if _nests(lib.path, other.path):
                raise reader.fail(
                    f"library[{i}].path",
                    f"{lib.path} nests with library[{j}] ({other.name}: {other.path}); "
                    "library roots must not contain each other",
                )


def _nests(a: str, b: str) -> bool:
    a_real, b_real = os.path.realpath(a), os.path.realpath(b)
    return any(
        x == y or x.startswith(y.rstrip("/") + "/")
        for x, y in ((a, b), (b, a), (a_real, b_real), (b_real, a_real))
    )


def _parse_enricher(reader: _Reader, table: dict[str, Any], prefix: str) -> EnricherConfig:
    p = prefix + "."
    reader.only_keys(table, p, {"name", "match", "command", "timeout", "enabled"})
    name = reader.get(table, p, "name", str, _REQUIRED)
    if not LIBRARY_NAME_RE.match(name):
        raise reader.fail(p + "name", f"{name!r} must match [a-z0-9_-]+")
    command = reader.string_list(table, p, "command", ())
    if not command and name not in BUILTIN_ENRICHERS:
        builtins = ", ".join(BUILTIN_ENRICHERS)
        raise reader.fail(p + "command", f"missing required key (only {builtins} are built in)")
    default_match = DEFAULT_ENRICHER_MATCH.get(name, _REQUIRED)
    if "match" not in table and default_match is _REQUIRED:
        raise reader.fail(p + "match", "missing required key")
    match = reader.string_list(table, p, "match", default_match if "match" not in table else ())
    for i, pattern in enumerate(match):
        if "[" in pattern or "]" in pattern:
            raise reader.fail(f"{p}match[{i}]", "only * and ? wildcards are supported")
    timeout = reader.duration(table, p, "timeout", 30.0)
    if timeout <= 0:
        raise reader.fail(p + "timeout", "must be positive")
    return EnricherConfig(
        name=name,
        match=match,
        command=command,
        timeout_s=timeout,
        enabled=reader.get(table, p, "enabled", bool, True),
    )
