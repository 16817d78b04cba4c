"""Every ``--help`` explains every argument: a new user reads it before the README."""

from __future__ import annotations

import argparse

from netassist.cli import build_parser


def _unexplained(parser: argparse.ArgumentParser, name: str) -> list[str]:
    missing = []
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for sub, subparser in action.choices.items():
                missing += _unexplained(subparser, f"{name} {sub}")
        elif not action.help and not isinstance(action, argparse._HelpAction):
            missing.append(f"{name} {'/'.join(action.option_strings) or action.metavar}")
    return missing


def test_every_argument_of_every_command_has_a_help_text():
    # files ls/get/put showed HOST[:PORT], PATH, REMOTE and --token bare, replay its FILE,
    # serve and run --log-level.
    assert _unexplained(build_parser(), "netassist") == []


def test_the_help_names_the_environment_variable_of_the_token():
    parser = build_parser()
    files = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    actions = files.choices["files"]._actions
    commands = next(a for a in actions if isinstance(a, argparse._SubParsersAction)).choices
    for command in ("serve", "ls", "get", "put"):
        token = next(a for a in commands[command]._actions if "--token" in a.option_strings)
        assert "NETASSIST_TOKEN" in token.help, command
