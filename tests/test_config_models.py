"""`models:` in gate.yml (gate.config.models): defaults merged key by key, names checked,
errors pointing at the entry's line. No TF, no model runs."""
from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from gate.config.load import config_models, load_config
from gate.errors import ConfigError

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


@pytest.fixture
def repo(tmp_path) -> Path:
    for name, src in (("cnn", "digits/model.keras"), ("k3", "keras3-cnn/model.keras"), ("tfl", "tflite/model.tflite")):
        (tmp_path / name).mkdir()
        shutil.copy(EXAMPLES / src, tmp_path / name / Path(src).name)
        shutil.copy(EXAMPLES / "tflite" / "eval.npz", tmp_path / name / "eval.npz")
    return tmp_path


CONFIG = """\
benchmark: {threads: 1, warmup: 2, runs: 10}
policy: dynamic-range
thresholds:
  accuracy: {min: 0.9, max_drop: 0.01}
  size_kb: {max: 500}
models:
  cnn: {model: cnn/model.keras, data: {eval: cnn/eval.npz}}
  k3:
    model: k3/model.keras
    data: {eval: k3/eval.npz}
    policy: float16
    thresholds:
      accuracy: {max_drop: 0.03}
  tfl:
    model: tfl/model.tflite
    data: {eval: tfl/eval.npz}
    benchmark: {runs: 5}
"""


def write(repo: Path, text: str) -> Path:
    path = repo / "gate.yml"
    path.write_text(text)
    return path


def test_entries_inherit_the_defaults_key_by_key(repo):
    path = write(repo, CONFIG)
    assert config_models(path) == ["cnn", "k3", "tfl"]
    cnn, k3, tfl = (load_config(path, name) for name in ("cnn", "k3", "tfl"))
    assert cnn.name == "cnn" and cnn.policy.name == "dynamic-range"
    assert cnn.thresholds.accuracy.min == 0.9 and cnn.thresholds.accuracy.max_drop == 0.01
    # k3 overrides one limit of the accuracy block; the other and size_kb are inherited
    assert k3.thresholds.accuracy.min == 0.9 and k3.thresholds.accuracy.max_drop == 0.03
    assert k3.thresholds.size_kb.max == 500 and k3.policy.name == "float16"
    assert tfl.benchmark.runs == 5 and tfl.benchmark.warmup == 2 and tfl.model_path.suffix == ".tflite"
    # each entry has its own digest; the file's sha256 is shared
    assert len({cnn.entry_sha256, k3.entry_sha256, tfl.entry_sha256}) == 3
    assert cnn.sha256 == k3.sha256 == tfl.sha256
    # a threshold's line is the line it is written on: the entry's override, or the default
    assert k3.threshold_line("accuracy.max_drop") == CONFIG.splitlines().index("      accuracy: {max_drop: 0.03}") + 1
    assert cnn.threshold_line("accuracy.max_drop") == 4


def test_a_policy_in_an_entry_replaces_the_default_whole(repo):
    text = CONFIG.replace("policy: dynamic-range", "policy: {convert: {quantization: dynamic}}").replace(
        "    policy: float16", "    policy: {convert: {quantization: float16}}")
    path = write(repo, text)
    assert load_config(path, "k3").policy.policy.convert.quantization.value == "float16"
    assert load_config(path, "cnn").policy.policy.convert.quantization.value == "dynamic"


def test_a_single_model_config_is_unchanged(repo):
    path = write(repo, "model: cnn/model.keras\ndata: {eval: cnn/eval.npz}\npolicy: float16\n")
    assert config_models(path) == []
    cfg = load_config(path)
    assert cfg.name is None and cfg.policy.name == "float16"
    with pytest.raises(ConfigError, match="no model named 'cnn'.*no `models:` mapping"):
        load_config(path, "cnn")


@pytest.mark.parametrize("text, message, field, line", [
    (CONFIG.replace("  tfl:\n", "  cnn:\n"), "duplicate key 'cnn' \\(first at line 7\\)", None, 14),
    (CONFIG.replace("  k3:\n", "  k 3:\n"), "expected a model name", "models.k 3", 8),
    (CONFIG.replace("  cnn: {model: cnn/model.keras, data: {eval: cnn/eval.npz}}", "  cnn: cnn/model.keras"),
     "expected a mapping", "models.cnn", 7),
    ("model: cnn/model.keras\n" + CONFIG, "top-level `model:` next to `models:`", "model", 1),
    (CONFIG.split("models:")[0] + "models: {}\n", "expected a mapping of model names", "models", 6),
    (CONFIG.replace("accuracy: {max_drop: 0.03}", "accuracy: {max_drop: lots}"), "",
     "models.k3.thresholds.accuracy.max_drop", 13),
    (CONFIG.replace("  k3:\n", "  report.json:\n"), "expected a model name", "models.report.json", 8),
    (CONFIG.replace("cnn/eval.npz}}", "cnn/nope.npz}}"), "eval data not found", "models.cnn.data.eval", 7),
    (CONFIG.replace("  size_kb: {max: 500}", "  size_kb: {max: -1}"), "", "thresholds.size_kb.max", 5),
])
def test_bad_entries_exit_2_naming_the_field_and_line(repo, text, message, field, line):
    path = write(repo, text)
    with pytest.raises(ConfigError, match=message) as info:
        for name in config_models(path) or ["cnn"]:
            load_config(path, name)
    assert info.value.exit_code == 2
    assert (info.value.field, info.value.line) == (field, line), info.value.render()


def test_a_multi_model_config_needs_a_name(repo):
    path = write(repo, CONFIG)
    with pytest.raises(ConfigError, match=r"lists 3 models \(cnn, k3, tfl\): name one"):
        load_config(path)
    with pytest.raises(ConfigError, match=r"no model named 'nope'; gate.yml's models are: cnn, k3, tfl"):
        load_config(path, "nope")


def test_the_editor_schema_takes_models_and_refuses_a_typo_in_an_entry():
    import jsonschema
    import yaml

    from gate.config.schema import json_schema

    validator = jsonschema.Draft202012Validator(json_schema("config"))
    data = yaml.safe_load((EXAMPLES / "many-models" / "gate.yml").read_text())
    assert not list(validator.iter_errors(data))
    data["models"]["keras3-cnn"]["modle"] = "typo.keras"
    assert list(validator.iter_errors(data))
    assert list(validator.iter_errors({"data": {"eval": "eval.npz"}}))     # neither model nor models
