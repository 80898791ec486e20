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
from gate.config.policies import load_policy_file, policy_data, preset_names
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
    assert data == policy_data(load_policy_file(Path(name)).policy)


@pytest.mark.parametrize("name", preset_names())
def test_policy_show_output_validates_and_resolves_to_the_same_policy(in_tmp, name):
    """`gate policy show NAME > mine.yml` is a starting point: it validates as it is, and
    each step names only its own kind."""
    result = gate("policy", "show", name)
    copy = write(in_tmp / "mine.yml", result.stdout)
    check = gate("policy", "validate", str(copy))
    assert check.exit_code == 0, check.output
    assert load_policy_file(copy).policy == load_policy_file(Path(name)).policy
    for step in yaml.safe_load(result.stdout)["steps"]:
        assert len(step) == 1 and None not in step.values()


def test_extends_merges_steps_by_position(in_tmp):
    """Changing one epoch count of a preset's chain: give that step's field, keep the rest."""
    write(in_tmp / "quick.yml", "extends: max-compression\nsteps:\n  - prune: {finetune: {epochs: 1}}\n"
                                "  - cluster: {}\n  - qat:\n      finetune: {learning_rate: 0.0001}\n")
    parent, child = load_policy_file(Path("max-compression")).policy, load_policy_file(Path("quick.yml")).policy
    assert [s.kind for s in child.steps] == ["prune", "cluster", "qat"]
    assert child.steps[0].prune.finetune.epochs == 1
    assert child.steps[0].prune.final_sparsity == parent.steps[0].prune.final_sparsity == 0.8
    assert child.steps[0].prune.finetune.learning_rate == parent.steps[0].prune.finetune.learning_rate
    assert child.steps[1] == parent.steps[1]
    assert child.steps[2].qat.finetune.learning_rate == 0.0001
    assert child.steps[2].qat.preserve == parent.steps[2].qat.preserve
    write(in_tmp / "short.yml", "extends: prune-int8\nsteps:\n  - prune: {final_sparsity: 0.5}\n")
    short = load_policy_file(Path("short.yml")).policy
    assert [s.kind for s in short.steps] == ["prune", "qat"] and short.steps[0].prune.final_sparsity == 0.5


def test_extends_with_a_different_step_kind_names_the_position(in_tmp):
    write(in_tmp / "odd.yml", "extends: prune-int8\nsteps:\n  - cluster: {clusters: 8}\n")
    result = gate("policy", "validate", "odd.yml")
    assert result.exit_code == 2
    assert "odd.yml:3, field 'steps[0]': steps[0] is a cluster step where the parent policy's steps[0] is prune" \
        in result.stderr
    assert "replace_steps: true" in result.stderr


def test_replace_steps_replaces_the_parents_list(in_tmp):
    write(in_tmp / "mine.yml", "extends: max-compression\nreplace_steps: true\nsteps:\n"
                               "  - cluster: {clusters: 8}\n  - qat: {preserve: [clusters]}\n")
    policy = load_policy_file(Path("mine.yml")).policy
    assert [s.kind for s in policy.steps] == ["cluster", "qat"] and policy.steps[0].cluster.clusters == 8
    write(in_tmp / "child.yml", "extends: mine.yml\nsteps:\n  - cluster: {clusters: 4}\n")
    child = load_policy_file(Path("child.yml")).policy    # a grandchild merges with the replaced list
    assert [s.kind for s in child.steps] == ["cluster", "qat"] and child.steps[0].cluster.clusters == 4
    assert child.replace_steps is False


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
    assert data == policy_data(load_policy_file(Path("child.yml")).policy)
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
                             "`representive_samples`: did you mean `representative_samples`? keys valid here: "
                             "quantization, io, representative_samples, sparsity, quantizer, recipe, keep_float\n")


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
