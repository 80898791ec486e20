"""`gate policy ...` and `gate --version` through click, plus a check that the light
commands never import TensorFlow."""
from __future__ import annotations

import json
import re
import subprocess
import sys
import time
from pathlib import Path

import jsonschema
import pytest
import yaml
from click.testing import CliRunner

from gate import __version__
from gate.cli import main
from gate.config.policies import load_policy_file, preset_names
from gate.config.schema import json_schema

REPO = Path(__file__).resolve().parent.parent


def gate(*args: str):
    return CliRunner().invoke(main, list(args))


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


def shown(stdout: str) -> tuple[str, dict]:
    """Split `gate policy show` output into its '# name' header and the YAML body."""
    header, _, body = stdout.partition("\n")
    return header, yaml.safe_load(body)


@pytest.fixture
def in_tmp(tmp_path, monkeypatch):
    """Run from an empty directory: a file named like a preset in the cwd would shadow it."""
    monkeypatch.chdir(tmp_path)
    return tmp_path


# ---------------------------------------------------------------- version

@pytest.mark.parametrize("flag", ["--version", "-V"])
def test_version(flag):
    result = gate(flag)
    assert result.exit_code == 0
    assert result.stdout == f"model-gate, version {__version__}\n"


# ---------------------------------------------------------------- policy list

def test_policy_list(in_tmp):
    result = gate("policy", "list")
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert [line.split()[0] for line in lines] == preset_names()
    width = max(map(len, preset_names()))
    for name, line in zip(preset_names(), lines):
        description = load_policy_file(Path(name)).policy.description
        assert description
        assert line == f"{name:<{width}}  {description}"


# ---------------------------------------------------------------- policy show

@pytest.mark.parametrize("name", preset_names())
def test_policy_show_preset(in_tmp, name):
    result = gate("policy", "show", name)
    assert result.exit_code == 0, result.output
    header, data = shown(result.stdout)
    assert header == f"# {name}"
    assert data == load_policy_file(Path(name)).policy.model_dump(mode="json", exclude={"extends"})


def test_policy_show_int8(in_tmp):
    header, data = shown(gate("policy", "show", "int8").stdout)
    assert data["convert"].items() >= {"quantization": "int8", "io": "float32", "representative_samples": 200}.items()
    assert data["description"].startswith("Post-training full integer int8")
    assert "extends" not in data


def test_policy_show_file_with_extends(in_tmp):
    base = write(in_tmp / "base" / "mine.yml", "extends: int8\ndescription: mine\nconvert: {io: uint8}\n")
    write(in_tmp / "child.yml", "extends: base/mine.yml\nconvert:\n  representative_samples: 50\n")
    result = gate("policy", "show", "child.yml")
    assert result.exit_code == 0, result.output
    header, data = shown(result.stdout)
    assert header == f"# child.yml (extends {base.resolve()} -> int8)"
    assert data == load_policy_file(Path("child.yml")).policy.model_dump(mode="json", exclude={"extends"})
    assert data["description"] == "mine"
    assert data["convert"].items() >= {"quantization": "int8", "io": "uint8", "representative_samples": 50}.items()


def test_policy_show_unknown_preset(in_tmp):
    result = gate("policy", "show", "int9")
    assert result.exit_code == 2
    assert result.stdout == ""
    assert result.stderr.startswith("error: unknown preset 'int9'; known presets: " + ", ".join(preset_names()))


# ---------------------------------------------------------------- policy validate

def test_policy_validate_ok(in_tmp):
    mine = write(in_tmp / "mine.yml", "extends: float16\ndescription: mine\n")
    files = [str(p) for p in sorted((REPO / "policies").glob("*.yml"))] + [str(mine), str(REPO / "gate.yml")]
    result = gate("policy", "validate", *files)
    assert result.exit_code == 0, result.output
    assert f"ok: {mine} (float16)" in result.stdout.splitlines()
    assert f"ok: {REPO / 'gate.yml'} (config)" in result.stdout.splitlines()
    assert f"ok: {REPO / 'policies' / 'dynamic-range.yml'} (dynamic)" in result.stdout.splitlines()
    assert len(result.stdout.splitlines()) == len(files)
    assert result.stderr == ""


def test_policy_validate_bad_file(in_tmp):
    good = write(in_tmp / "good.yml", "convert: {quantization: int8}\n")
    bad = write(in_tmp / "bad.yml", "description: typo\nconvert:\n  quantization: int8\n  representive_samples: 10\n")
    result = gate("policy", "validate", str(good), str(bad))
    assert result.exit_code == 2
    assert result.stdout == f"ok: {good} (int8)\n"
    assert result.stderr == (f"error: {bad}:4, field 'convert.representive_samples': unknown key "
                             "(check the spelling; `gate policy schema` lists the keys)\n")


def test_policy_validate_bad_yaml(in_tmp):
    bad = write(in_tmp / "bad.yml", "convert:\n  quantization: int8\n   io: int8\n")
    result = gate("policy", "validate", str(bad))
    assert result.exit_code == 2
    assert result.stderr.startswith(f"error: {bad}:3: invalid YAML:")


def test_policy_validate_bad_config(in_tmp):
    for name in ("m.keras", "eval.npz"):
        write(in_tmp / name, "")
    bad = write(in_tmp / "gate.yml", "model: m.keras\ndata: {eval: eval.npz}\npolicy: float16\n"
                                     "benchmark:\n  threads: 0\n")
    result = gate("policy", "validate", str(bad))
    assert result.exit_code == 2
    assert result.stderr == (f"error: {bad}:5, field 'benchmark.threads': "
                             "Input should be greater than or equal to 1 (got 0)\n")


def test_policy_validate_missing_file(in_tmp):
    result = gate("policy", "validate", "nope.yml")
    assert result.exit_code == 2
    assert result.stderr == "error: nope.yml: policy file not found\n"


def test_policy_validate_needs_a_file():
    result = gate("policy", "validate")
    assert result.exit_code == 2
    assert "Missing argument 'FILES...'" in result.stderr


# ---------------------------------------------------------------- policy schema

@pytest.mark.parametrize("args, kind", [([], "policy"), (["--policy"], "policy"), (["--config"], "config")])
def test_policy_schema(args, kind):
    result = gate("policy", "schema", *args)
    assert result.exit_code == 0, result.output
    schema = json.loads(result.stdout)
    jsonschema.Draft202012Validator.check_schema(schema)
    assert schema == json_schema(kind)


def test_config_schema_validates_the_example():
    schema = json.loads(gate("policy", "schema", "--config").stdout)
    jsonschema.validate(yaml.safe_load((REPO / "gate.yml").read_text()), schema)


# ---------------------------------------------------------------- no TensorFlow

IMPORT_LINE = re.compile(r"^import time:\s+\d+\s+\|\s+\d+\s+\|(\s*)(\S+)\s*$")


def imported(stderr: str) -> set[str]:
    """Module names from `python -X importtime` output."""
    return {m.group(2) for line in stderr.splitlines() if (m := IMPORT_LINE.match(line))}


def run_importtime(*args: str) -> tuple[subprocess.CompletedProcess, float]:
    start = time.perf_counter()
    proc = subprocess.run([sys.executable, "-X", "importtime", *args], cwd=REPO,
                          capture_output=True, text=True, timeout=60)
    return proc, time.perf_counter() - start


def test_importtime_parser_sees_imports():
    proc, _ = run_importtime("-c", "import json")
    assert proc.returncode == 0, proc.stderr
    assert {"json", "json.decoder"} <= imported(proc.stderr)


@pytest.mark.parametrize("args", [["--help"], ["policy", "list"], ["policy", "show", "int8"],
                                  ["policy", "schema", "--config"]], ids=" ".join)
def test_light_commands_never_import_tensorflow(args):
    proc, seconds = run_importtime("-m", "gate", *args)
    assert proc.returncode == 0, proc.stderr[-2000:]
    modules = imported(proc.stderr)
    assert "click" in modules and "gate.cli" in modules  # the parse worked
    tf_lines = [line for line in proc.stderr.splitlines() if line.rstrip().endswith("| tensorflow")]
    heavy = sorted(m for m in modules if m.split(".")[0] in {"tensorflow", "tf_keras", "keras",
                                                             "tensorflow_model_optimization"})
    assert not tf_lines and not heavy, f"`gate {' '.join(args)}` imported {heavy[:10]} ({seconds:.2f} s)"


def test_gate_help_wall_time():
    exe = Path(sys.executable).with_name("gate")
    cmd = [str(exe), "--help"] if exe.exists() else [sys.executable, "-m", "gate", "--help"]
    start = time.perf_counter()
    proc = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=60)
    seconds = time.perf_counter() - start
    assert proc.returncode == 0 and "Usage:" in proc.stdout and "policy" in proc.stdout, (
        f"`gate --help` took {seconds:.2f} s wall time; stderr: {proc.stderr[-2000:]}")
