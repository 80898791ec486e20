"""The CLI reference is generated from --help and must be current; every command has
an Example."""
from __future__ import annotations

import importlib.util
from pathlib import Path

import click

from gate.cli import main

DOCS = Path(__file__).resolve().parent.parent / "docs"


def _gen():
    spec = importlib.util.spec_from_file_location("gen_cli", DOCS / "gen_cli.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_cli_reference_is_current():
    assert (DOCS / "cli.md").read_text(encoding="utf-8") == _gen().render(), \
        "docs/cli.md is stale: run `python docs/gen_cli.py`"


def test_every_command_has_an_example():
    missing = []
    for path in _gen().commands(main):
        cmd = main
        for name in path:
            cmd = cmd.commands[name]
        if not isinstance(cmd, click.Group) and "Example:" not in (cmd.help or ""):
            missing.append(" ".join(path))
    assert not missing, f"commands without an Example: {missing}"
