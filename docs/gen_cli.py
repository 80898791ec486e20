"""Regenerate docs/cli.md from the commands' --help (a test checks it is current).

    python docs/gen_cli.py
"""
from __future__ import annotations

from pathlib import Path

import click
from click.testing import CliRunner

from gate.cli import main

OUT = Path(__file__).resolve().parent / "cli.md"


def commands(group: click.Group, prefix: tuple[str, ...] = ()):
    yield prefix
    for name in sorted(group.commands):
        cmd = group.commands[name]
        if isinstance(cmd, click.Group):
            yield from commands(cmd, prefix + (name,))
        else:
            yield prefix + (name,)


def render() -> str:
    parts = ["# CLI reference\n", "Generated from `--help` by `python docs/gen_cli.py`; do not edit by hand.\n"]
    runner = CliRunner()
    for path in commands(main):
        result = runner.invoke(main, [*path, "--help"], prog_name="gate", terminal_width=100)
        title = " ".join(("gate",) + path)
        parts.append(f"\n## `{title}`\n\n```\n{result.output.rstrip()}\n```\n")
    return "".join(parts)


if __name__ == "__main__":
    OUT.write_text(render(), encoding="utf-8")
    print(f"wrote {OUT}")
