"""Workflow commands: inputs, GITHUB_OUTPUT heredocs, annotations, masks, step summary."""
from __future__ import annotations

from pathlib import Path

import pytest

from gate.github import actions
from gate.github.actions import (
    STEP_SUMMARY_LIMIT,
    add_mask,
    annotation,
    append_step_summary,
    read_inputs,
    set_outputs,
)


def parse_output_file(text: str) -> dict[str, str]:
    """Read GITHUB_OUTPUT the way the runner does (name=value and name<<DELIM blocks)."""
    values: dict[str, str] = {}
    lines = text.split("\n")
    i = 0
    while i < len(lines):
        line = lines[i]
        i += 1
        if not line:
            continue
        if "<<" in line and ("=" not in line or line.index("<<") < line.index("=")):
            name, delimiter = line.split("<<", 1)
            body = []
            while lines[i] != delimiter:
                body.append(lines[i])
                i += 1
            i += 1
            values[name] = "\n".join(body)
        else:
            name, value = line.split("=", 1)
            values[name] = value
    return values


# -- inputs ------------------------------------------------------------------------------

def test_inputs_accept_hyphen_and_underscore_spellings() -> None:
    env = {"INPUT_GITHUB-TOKEN": "t1", "INPUT_CONFIG_PATH": " gate.yaml \n", "PATH": "/bin",
           "INPUT_FAIL-ON": "warn"}
    assert read_inputs(env) == {"github_token": "t1", "config_path": "gate.yaml", "fail_on": "warn"}
    assert read_inputs({"INPUT_GITHUB_TOKEN": "t2"}) == {"github_token": "t2"}


def test_inputs_non_empty_spelling_wins_then_runner_spelling() -> None:
    assert read_inputs({"INPUT_GITHUB-TOKEN": "", "INPUT_GITHUB_TOKEN": "x"})["github_token"] == "x"
    assert read_inputs({"INPUT_GITHUB_TOKEN": "", "INPUT_GITHUB-TOKEN": "y"})["github_token"] == "y"
    both = {"INPUT_GITHUB_TOKEN": "underscore", "INPUT_GITHUB-TOKEN": "hyphen"}
    assert read_inputs(both)["github_token"] == "hyphen"


def test_nothing_is_read_at_import_time(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("INPUT_CONFIG", "from-os-environ")
    assert read_inputs({}) == {}


# -- outputs -----------------------------------------------------------------------------

def test_outputs_round_trip_through_runner_syntax(tmp_path: Path) -> None:
    out = tmp_path / "output"
    out.write_text("earlier=1\n")
    values = {"verdict": "fail", "report": "line 1\nline 2\n\nline=4 <<EOF",
              "passed": False, "count": 3, "details": {"a": [1]}, "empty": None,
              "crlf": "a\r\nb"}
    assert set_outputs({"GITHUB_OUTPUT": str(out)}, values)
    parsed = parse_output_file(out.read_bytes().decode())
    assert parsed == {"earlier": "1", "verdict": "fail", "report": "line 1\nline 2\n\nline=4 <<EOF",
                      "passed": "false", "count": "3", "details": '{"a": [1]}', "empty": "",
                      "crlf": "a\r\nb"}


def test_heredoc_delimiter_never_occurs_in_value(tmp_path: Path, monkeypatch) -> None:
    tokens = iter(["aa", "aa", "bb"])
    monkeypatch.setattr(actions.secrets, "token_hex", lambda n: next(tokens))
    value = "x\nghadelimiter_aa\ny"
    text = actions.format_outputs({"v": value})
    assert text == f"v<<ghadelimiter_bb\n{value}\nghadelimiter_bb\n"


def test_outputs_outside_actions_are_a_no_op() -> None:
    assert set_outputs({}, {"a": "b"}) is False


@pytest.mark.parametrize("name", ["", "a=b", "a\nb", "a<<b"])
def test_bad_output_names_are_rejected(tmp_path: Path, name: str) -> None:
    with pytest.raises(ValueError):
        set_outputs({"GITHUB_OUTPUT": str(tmp_path / "o")}, {name: "v"})


# -- annotations and masks ---------------------------------------------------------------

def test_annotation_with_properties() -> None:
    assert annotation("error", "accuracy dropped", file="models/m.tflite", line=3,
                      title="Gate failed") == \
        "::error file=models/m.tflite,line=3,title=Gate failed::accuracy dropped"


def test_annotation_escapes_data_and_properties() -> None:
    cmd = annotation("warning", "100% of ops\r\nfell back: CPU, GPU", file="C:\\a,b.yaml",
                     title="50%: a, b")
    assert cmd == ("::warning file=C%3A\\a%2Cb.yaml,title=50%25%3A a%2C b::"
                   "100%25 of ops%0D%0Afell back: CPU, GPU")
    assert "\n" not in cmd


def test_annotation_without_properties_and_bad_level() -> None:
    assert annotation("notice", "ok") == "::notice::ok"
    with pytest.raises(ValueError):
        annotation("fatal", "x")


def test_add_mask_masks_each_line() -> None:
    assert add_mask("s3cr%t") == "::add-mask::s3cr%25t"
    assert add_mask("line1\r\nline2\n") == "::add-mask::line1\n::add-mask::line2"


# -- step summary ------------------------------------------------------------------------

def test_step_summary_appends(tmp_path: Path) -> None:
    summary = tmp_path / "summary.md"
    env = {"GITHUB_STEP_SUMMARY": str(summary)}
    assert append_step_summary(env, "# One")
    assert append_step_summary(env, "# Two\n")
    assert summary.read_text() == "# One\n# Two\n"
    assert append_step_summary({}, "x") is False


def test_step_summary_over_limit_is_cut_with_note(tmp_path: Path) -> None:
    summary = tmp_path / "summary.md"
    summary.write_text("already here\n")
    row = "| op | é ms |\n"  # multi-byte: the limit is in bytes
    append_step_summary({"GITHUB_STEP_SUMMARY": str(summary)}, row * 200_000)
    data = summary.read_bytes()
    assert len(data) <= STEP_SUMMARY_LIMIT
    text = data.decode("utf-8")
    assert text.startswith("already here\n| op |")
    assert "Summary truncated" in text
    body = text.split("\n\n> [!WARNING]")[0]
    assert body.endswith("| op | é ms |")  # cut on a line boundary
