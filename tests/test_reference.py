"""docs/reference.md cannot drift from the code: every config key the loader accepts, every
command and option the parser has, and every event name in daemon/logs.py is documented."""

from __future__ import annotations

import argparse
import dataclasses
import re

import pytest

from daemon import logs
from daemon.cli import build_parser
from daemon.config import ConfigError, DaemonConfig, EnricherConfig, LibraryConfig, parse_config
from tests.conftest import REPO_ROOT

REFERENCE = (REPO_ROOT / "docs" / "reference.md").read_text()
TABLES = {"daemon": "### `[daemon]`", "library": "### `[[library]]`",
          "enricher": "### `[[enricher]]`"}


def section(heading_prefix: str) -> str:
    """The text from the heading that starts with `heading_prefix` to the next heading."""
    lines = REFERENCE.splitlines()
    starts = [i for i, line in enumerate(lines) if line.startswith(heading_prefix)]
    assert starts, f"docs/reference.md has no heading starting with {heading_prefix!r}"
    body = []
    for line in lines[starts[0] + 1:]:
        if line.startswith(("## ", "### ")):
            break
        body.append(line)
    return "\n".join(body)


def loader_keys(table: str) -> set[str]:
    """The keys the loader accepts in a table, from its own unknown-key error."""
    raw = {"daemon": {"no_such_key": 1}} if table == "daemon" else {table: [{"no_such_key": 1}]}
    with pytest.raises(ConfigError) as caught:
        parse_config(raw, "reference-test.toml")
    allowed = re.search(r"allowed: ([^)]*)", caught.value.problem)
    assert allowed, caught.value.problem
    return set(allowed.group(1).split(", "))


def dataclass_keys(cls) -> set[str]:
    """Config dataclass fields as config keys (`tick_interval_s` is the `tick_interval` key)."""
    return {f.name.removesuffix("_s") for f in dataclasses.fields(cls)}


@pytest.mark.parametrize("table, cls", [("daemon", DaemonConfig), ("library", LibraryConfig),
                                        ("enricher", EnricherConfig)])
def test_every_config_key_is_in_the_reference(table, cls):
    keys = loader_keys(table) | dataclass_keys(cls)
    text = section(TABLES[table])
    undocumented = sorted(k for k in keys if f"| `{k}` |" not in text)
    assert not undocumented, f"[{table}] keys missing from docs/reference.md: {undocumented}"


def test_every_config_table_is_in_the_reference():
    with pytest.raises(ConfigError) as caught:
        parse_config({"no_such_table": {}}, "reference-test.toml")
    tables = re.search(r"allowed: ([^)]*)", caught.value.problem).group(1).split(", ")
    assert set(tables) == set(TABLES), "a new config table needs its section in the reference"


def leaf_commands(parser: argparse.ArgumentParser, path: tuple[str, ...] = ()):
    subparsers = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    if not subparsers:
        yield path, parser
    for action in subparsers:
        for name, child in action.choices.items():
            yield from leaf_commands(child, (*path, name))


COMMANDS = list(leaf_commands(build_parser()))


def argument_names(action: argparse.Action) -> list[str]:
    if action.option_strings:
        return list(action.option_strings)
    return [action.metavar or action.dest.upper()]


@pytest.mark.parametrize("path, parser", COMMANDS, ids=[" ".join(p) for p, _ in COMMANDS])
def test_every_command_and_option_is_in_the_reference(path, parser):
    text = section("### `assetd " + " ".join(path))
    missing = [
        name
        for action in parser._actions
        if action.help != argparse.SUPPRESS and not isinstance(action, argparse._HelpAction)
        for name in argument_names(action)
        if f"`{name}" not in text
    ]
    assert not missing, f"assetd {' '.join(path)}: not in docs/reference.md: {missing}"


def test_every_global_option_is_in_the_reference():
    text = section("### Global options")
    parser = build_parser()
    missing = [name for action in parser._actions if action.option_strings
               for name in action.option_strings if f"`{name}" not in text]
    assert not missing, missing


def test_every_event_name_in_logs_is_in_the_reference():
    events = {value for name, value in vars(logs).items()
              if name.isupper() and isinstance(value, str) and "." in value}
    text = section("## Logs")
    assert events and not sorted(e for e in events if f"`{e}`" not in text)


def test_the_reference_is_the_projects_own():
    for path in [REPO_ROOT / "README.md", *sorted((REPO_ROOT / "docs").glob("*.md"))]:
        assert "../shared" not in path.read_text(), f"{path.name} points outside the repository"
    assert "docs/reference.md" in (REPO_ROOT / "README.md").read_text()
