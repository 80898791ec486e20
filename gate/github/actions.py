"""GitHub Actions workflow commands: inputs, outputs, step summary, annotations, masks.

Pure functions over an env mapping; nothing is read at import time. Functions that
return command strings leave printing to the caller.
"""
from __future__ import annotations

import json
import os
import secrets
from collections.abc import Mapping
from typing import Any

STEP_SUMMARY_LIMIT = 1024 * 1024  # GitHub rejects step summaries over 1 MiB
ANNOTATION_LEVELS = ("error", "warning", "notice")
_SUMMARY_CUT_NOTE = ("\n\n> [!WARNING]\n> Summary truncated: GitHub limits a step summary "
                     "to 1 MiB. The full report is in the workflow artifact.\n")


def read_inputs(env: Mapping[str, str]) -> dict[str, str]:
    """Action inputs as {lower_snake_name: stripped value}.

    The runner spells `github-token` as INPUT_GITHUB-TOKEN; a shell or docker `-e`
    can only pass INPUT_GITHUB_TOKEN. Both are accepted; when both are set, the
    non-empty one wins, and the runner's own (hyphen) spelling wins a tie.
    """
    candidates: dict[str, list[tuple[bool, bool, str]]] = {}
    for key, value in env.items():
        if not key.startswith("INPUT_") or key == "INPUT_":
            continue
        raw_name = key[len("INPUT_"):]
        name = raw_name.lower().replace("-", "_").replace(" ", "_")
        value = value.strip()
        candidates.setdefault(name, []).append((bool(value), "-" in raw_name, value))
    return {name: max(options)[2] for name, options in candidates.items()}


def _command_value(value: Any) -> str:
    """How actions/toolkit stringifies a value: str as is, None as '', else JSON."""
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    return json.dumps(value)


def format_outputs(outputs: Mapping[str, Any]) -> str:
    """Render outputs in GITHUB_OUTPUT file syntax (heredoc for multiline values)."""
    chunks = []
    for name, value in outputs.items():
        if not name or any(c in name for c in "\r\n=<"):
            raise ValueError(f"invalid output name {name!r}")
        text = _command_value(value)
        if "\n" not in text and "\r" not in text:
            chunks.append(f"{name}={text}\n")
            continue
        delimiter = f"ghadelimiter_{secrets.token_hex(16)}"
        while delimiter in text:  # practically never; guarantees a unique end line
            delimiter = f"ghadelimiter_{secrets.token_hex(16)}"
        chunks.append(f"{name}<<{delimiter}\n{text}\n{delimiter}\n")
    return "".join(chunks)


def set_outputs(env: Mapping[str, str], outputs: Mapping[str, Any]) -> bool:
    """Append outputs to the GITHUB_OUTPUT file; False (nothing written) outside Actions."""
    path = env.get("GITHUB_OUTPUT")
    if not path:
        return False
    with open(path, "a", encoding="utf-8", newline="\n") as fh:
        fh.write(format_outputs(outputs))
    return True


def fit_summary(markdown: str, budget: int) -> str:
    """Cut markdown on a line boundary so its UTF-8 size fits budget, with a note."""
    data = markdown.encode("utf-8")
    if len(data) <= budget:
        return markdown
    room = budget - len(_SUMMARY_CUT_NOTE.encode("utf-8"))
    if room <= 0:
        return ""
    head = data[:room]
    newline = head.rfind(b"\n")
    if newline > 0:
        head = head[:newline]
    return head.decode("utf-8", errors="ignore") + _SUMMARY_CUT_NOTE


def append_step_summary(env: Mapping[str, str], markdown: str) -> bool:
    """Append markdown to GITHUB_STEP_SUMMARY, cut to what fits in GitHub's 1 MiB limit.

    Returns False (nothing written) outside Actions.
    """
    path = env.get("GITHUB_STEP_SUMMARY")
    if not path:
        return False
    used = os.path.getsize(path) if os.path.exists(path) else 0
    text = fit_summary(markdown if markdown.endswith("\n") else markdown + "\n",
                       STEP_SUMMARY_LIMIT - used)
    with open(path, "a", encoding="utf-8", newline="\n") as fh:
        fh.write(text)
    return True


def escape_data(value: Any) -> str:
    """Escape a workflow command's message part."""
    return _command_value(value).replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")


def escape_property(value: Any) -> str:
    """Escape a workflow command's property value (also ':' and ',')."""
    return escape_data(value).replace(":", "%3A").replace(",", "%2C")


def annotation(level: str, message: str, file: str | None = None, line: int | None = None,
               title: str | None = None, *, end_line: int | None = None,
               col: int | None = None) -> str:
    """`::error file=..,line=..,title=..::message` for level error, warning or notice."""
    if level not in ANNOTATION_LEVELS:
        raise ValueError(f"annotation level must be one of {ANNOTATION_LEVELS}, got {level!r}")
    props = {"file": file, "line": line, "endLine": end_line, "col": col, "title": title}
    rendered = ",".join(f"{k}={escape_property(v)}" for k, v in props.items() if v is not None)
    return f"::{level}{' ' + rendered if rendered else ''}::{escape_data(message)}"


def add_mask(value: str) -> str:
    """`::add-mask::` command(s) for a secret; one per line so multiline secrets mask too."""
    lines = [part for part in value.replace("\r\n", "\n").split("\n") if part.strip()]
    return "\n".join(f"::add-mask::{escape_data(part)}" for part in lines)
