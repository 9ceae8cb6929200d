"""`--help` explains every command and argument; global options are shown once."""

from __future__ import annotations

import argparse

import pytest

from daemon.cli import GLOBAL_OPTIONS, build_parser


def walk_commands(parser: argparse.ArgumentParser, path: tuple[str, ...] = ()):
    """(command path, parser, help summary) for the parser and every (sub)command below it."""
    yield path, parser, None
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            summaries = {choice.dest: choice.help for choice in action._choices_actions}
            for name, child in action.choices.items():
                for sub_path, sub_parser, summary in walk_commands(child, (*path, name)):
                    yield sub_path, sub_parser, summary if sub_path != (*path, name) \
                        else summaries.get(name)


COMMANDS = list(walk_commands(build_parser()))


def test_the_walk_finds_the_nested_commands():
    paths = {" ".join(path) for path, _, _ in COMMANDS}
    assert {"scan", "files", "tag add", "tag rm", "tag ls", "insight set", "insight show",
            "config check"} <= paths


@pytest.mark.parametrize("path, parser, summary", COMMANDS,
                         ids=[" ".join(p) or "assetd" for p, _, _ in COMMANDS])
def test_every_command_and_argument_is_described(path, parser, summary):
    assert (parser.description or "").strip(), f"{parser.prog}: no description"
    if path:
        assert (summary or "").strip(), f"{parser.prog}: no summary in its parent's list"
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            continue
        name = "/".join(action.option_strings) or action.metavar or action.dest
        if action.help == argparse.SUPPRESS:
            # Only the global options are hidden: `assetd --help` documents them once.
            assert path and set(action.option_strings) <= set(GLOBAL_OPTIONS), name
            continue
        assert (action.help or "").strip(), f"{parser.prog}: {name} has no help"


def test_global_options_are_shown_once_at_the_top(capsys):
    with pytest.raises(SystemExit):
        build_parser().parse_args(["--help"])
    top = capsys.readouterr().out
    for option in GLOBAL_OPTIONS:
        assert option in top
    assert "new" in top and "enriching" in top and "ready" in top
    for path, _, _ in COMMANDS[1:]:
        with pytest.raises(SystemExit):
            build_parser().parse_args([*path, "--help"])
        text = capsys.readouterr().out
        assert "--log-format" not in text.split("Global options")[0], path
        assert "assetd --help" in text, path


def test_files_help_explains_the_states(capsys):
    with pytest.raises(SystemExit):
        build_parser().parse_args(["files", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    for state in ("new (", "enriching (", "ready ("):
        assert state in text


@pytest.mark.parametrize("argv", [
    ["--config", "x.toml", "--log-level", "debug", "scan", "--json"],
    ["scan", "--config", "x.toml", "--log-level", "debug", "--json"],
    ["--db", "sqlite:////tmp/x.db", "tag", "add", "--log-format", "json", "p", "t"],
])
def test_global_options_work_before_and_after_the_command(argv):
    args = build_parser().parse_args(argv)
    assert (args.config or args.db) and (args.log_level or args.log_format)


def _commands_of(parser: argparse.ArgumentParser) -> list[str]:
    (sub,) = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    return list(sub.choices)


def test_the_command_table_names_the_module_that_registers_each_command():
    """A command line builds only its command's module (`command_modules`): the table must
    say which module registers what, or a command would vanish from its own parse."""
    from daemon.cli import COMMAND_MODULES

    assert list(COMMAND_MODULES) == _commands_of(build_parser())
    for command, module in COMMAND_MODULES.items():
        registered = _commands_of(build_parser([command]))
        assert command in registered, (command, module)
        assert {COMMAND_MODULES[name] for name in registered} == {module}


@pytest.mark.parametrize("argv", [
    ["status"], ["--config", "x.toml", "status", "--json"], ["--db=sqlite:///x", "files"],
    ["--log-level", "debug", "scan", "--no-enrich"], ["--conf", "scan", "dupes"],
    ["tag", "add", "a.jpg", "status"], ["insight", "show", "x"], ["config", "check"],
    ["library", "adopt", "photos"], ["changes", "--since", "3"], ["run"],
], ids=" ".join)
def test_a_command_line_parses_the_same_with_only_its_module(argv):
    """`--conf scan dupes`: `scan` is --config's value (an abbreviation), `dupes` the command."""
    assert vars(build_parser(argv).parse_args(argv)) == vars(build_parser().parse_args(argv))


@pytest.mark.parametrize("argv", [["-h", "status"], ["--he", "scan"], ["--", "status"],
                                  ["nosuchcommand"], []], ids=" ".join)
def test_help_and_anything_unrecognised_get_every_command(argv):
    assert _commands_of(build_parser(argv)) == _commands_of(build_parser())
