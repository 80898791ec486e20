"""gate.yml and policy loading: every broken input is a ConfigError/PolicyError (exit 2)
naming the file, the field and (where the YAML has one) the line. No TensorFlow."""
from __future__ import annotations

from pathlib import Path

import jsonschema
import pytest
import yaml

from gate.config.load import load_config
from gate.config.policies import load_policy_file, preset_names
from gate.config.schema import IoType, Quantization, json_schema
from gate.errors import EXIT_BAD_INPUT, ConfigError, GateError, PolicyError
from gate.formats import MODEL_FILE_FORMATS

REPO = Path(__file__).resolve().parent.parent
POLICIES = REPO / "policies"
EXAMPLE_CONFIG = REPO / "gate.yml"
TOP_KEYS = "model, data, policy, thresholds, benchmark, evaluate, limits, trust_model_code"
ACCURACY_KEYS = "min, max_drop, max_drop_vs_base, mode, confidence, top_k"
CONVERT_KEYS = "quantization, io, representative_samples, sparsity, quantizer, recipe, keep_float"
UNKNOWN_MAXDROP = f"unknown key `maxdrop`: did you mean `max_drop`? keys valid here: {ACCURACY_KEYS}"

# A valid config over the files project() creates; cases append to it or replace it.
BASE = """\
model: m.keras
data:
  train: train.npz
  eval: eval.npz
policy: int8
"""


# ---------------------------------------------------------------- helpers

def write(path: Path, text: str | bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(text, bytes):
        path.write_bytes(text)
    else:
        path.write_text(text, encoding="utf-8")
    return path


def project(root: Path, *names: str) -> Path:
    """Empty stand-ins for the model and data (config loading only checks they exist)."""
    for name in names or ("m.keras", "train.npz", "eval.npz"):
        write(root / name, b"")
    return root


def config(root: Path, text: str | bytes, name: str = "gate.yml") -> Path:
    project(root)
    return write(root / name, text)


def config_error(path: Path, cls: type[GateError] = ConfigError) -> GateError:
    with pytest.raises(cls) as info:
        load_config(path)
    err = info.value
    assert type(err) is cls, f"{type(err).__name__}: {err}"
    assert err.exit_code == EXIT_BAD_INPUT == 2
    return err


def policy_error(path: Path, cls: type[GateError] = PolicyError) -> GateError:
    with pytest.raises(cls) as info:
        load_policy_file(path)
    err = info.value
    assert type(err) is cls, f"{type(err).__name__}: {err}"
    assert err.exit_code == 2
    return err


# ---------------------------------------------------------------- the example and presets

def test_example_config_loads():
    cfg = load_config(EXAMPLE_CONFIG)
    assert cfg.path == EXAMPLE_CONFIG
    assert cfg.model_path == REPO / "examples/digits/model.keras"
    assert cfg.train_path == REPO / "examples/digits/train.npz"
    assert cfg.eval_path == REPO / "examples/digits/eval.npz"
    assert cfg.policy.name == "int8" and cfg.policy.chain == ("int8",)
    assert cfg.policy.policy.convert.quantization is Quantization.int8
    assert cfg.thresholds.size_kb.max == 100
    assert cfg.thresholds.accuracy.max_drop == 0.01
    assert (cfg.benchmark.threads, cfg.benchmark.warmup, cfg.benchmark.runs) == (1, 20, 200)
    assert len(cfg.sha256) == 64


def test_preset_names_are_the_policy_files():
    assert preset_names() == sorted(p.stem for p in POLICIES.glob("*.yml"))
    assert {"int8", "float16", "float32", "dynamic-range", "int16x8"} <= set(preset_names())


EXPECTED_QUANTIZATION = {"int8": "int8", "int16x8": "int16x8", "float16": "float16",
                         "float32": "none", "dynamic-range": "dynamic", "max-compression": "int8",
                         "prune-int8": "int8", "cluster-int8": "int8", "qat-int8": "int8",
                         "structured-int8": "int8", "latency-xnnpack": "none"}


@pytest.mark.parametrize("name", preset_names())
def test_every_preset_validates(name):
    by_name = load_policy_file(Path(name))
    by_path = load_policy_file(POLICIES / f"{name}.yml")
    assert by_name.name == name and by_name.chain == (name,) and by_name.source == f"preset:{name}"
    assert by_name.policy == by_path.policy
    assert by_name.policy.description.strip()
    assert by_name.policy.convert.quantization.value == EXPECTED_QUANTIZATION[name]


@pytest.mark.parametrize("name", preset_names())
def test_every_preset_is_usable_from_a_config(tmp_path, name):
    cfg = load_config(config(tmp_path, BASE.replace("policy: int8", f"policy: {name}")))
    assert cfg.policy.name == name
    assert cfg.policy.policy == load_policy_file(Path(name)).policy


def test_tflite_model_needs_no_policy(tmp_path):
    project(tmp_path, "m.tflite", "eval.npz")
    cfg = load_config(write(tmp_path / "gate.yml", "model: m.tflite\ndata: {eval: eval.npz}\n"))
    assert cfg.policy is None and cfg.train_path is None


def test_savedmodel_directory_is_a_model(tmp_path):
    write(tmp_path / "saved" / "saved_model.pb", b"")
    cfg = load_config(config(tmp_path, BASE.replace("m.keras", "saved")))
    assert cfg.model_path == (tmp_path / "saved").resolve()


@pytest.mark.parametrize("suffix", (*MODEL_FILE_FORMATS, ".KERAS"))
def test_model_suffixes_accepted(tmp_path, suffix):
    project(tmp_path, f"m{suffix}")
    cfg = load_config(config(tmp_path, BASE.replace("m.keras", f"m{suffix}")))
    assert cfg.model_path.name == f"m{suffix}"


def test_accuracy_top_k_is_added_to_evaluate(tmp_path):
    cfg = load_config(config(tmp_path, BASE + "thresholds:\n  accuracy: {min: 0.5, top_k: 5}\n"
                                              "evaluate: {top_k: [1, 3]}\n"))
    assert cfg.evaluate.top_k == [1, 3, 5]


def test_paths_are_relative_to_the_config_not_the_cwd(tmp_path, monkeypatch):
    proj = tmp_path / "proj"
    project(proj)
    write(proj / "policies" / "mine.yml", "description: mine\nconvert: {quantization: float16}\n")
    path = write(proj / "gate.yml", BASE.replace("policy: int8", "policy: policies/mine.yml"))
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    cfg = load_config(path)
    mine = (proj / "policies" / "mine.yml").resolve()
    assert cfg.model_path == (proj / "m.keras").resolve()
    assert cfg.policy.name == str(mine) and cfg.policy.source == str(mine)
    assert cfg.policy.policy.description == "mine"
    assert cfg.policy.policy.convert.quantization is Quantization.float16


def test_inline_policy(tmp_path):
    cfg = load_config(config(tmp_path, BASE.replace(
        "policy: int8", "policy:\n  convert:\n    quantization: int8\n    io: uint8\n")))
    assert cfg.policy.name == "inline" and cfg.policy.chain == ("inline",)
    assert cfg.policy.source == str(tmp_path / "gate.yml")
    assert cfg.policy.policy.convert.io is IoType.uint8
    assert cfg.policy.policy.convert.representative_samples == 200  # default


def test_inline_policy_extends_preset_with_override(tmp_path):
    cfg = load_config(config(tmp_path, BASE.replace(
        "policy: int8", "policy:\n  extends: int8\n  convert:\n    representative_samples: 50\n")))
    preset = load_policy_file(Path("int8")).policy
    got = cfg.policy.policy
    assert cfg.policy.chain == ("inline", "int8")
    assert got.convert.representative_samples == 50                    # the override wins
    assert got.convert.quantization is Quantization.int8                # inherited
    assert got.convert.io is preset.convert.io is IoType.float32        # inherited
    assert got.description == preset.description                        # inherited


def test_policy_file_extends_preset_with_override(tmp_path):
    path = write(tmp_path / "p.yml", "extends: int8\ndescription: mine\nconvert:\n  io: int8\n")
    got = load_policy_file(path)
    assert got.chain == (str(path), "int8")
    assert got.policy.description == "mine"
    assert got.policy.convert.io is IoType.int8
    assert got.policy.convert.quantization is Quantization.int8
    assert got.policy.convert.representative_samples == 200


def test_extends_chain_of_files(tmp_path):
    base = write(tmp_path / "base" / "c1.yml",
                 "extends: int8\ndescription: c1\nconvert:\n  representative_samples: 50\n")
    write(tmp_path / "c2.yml", "extends: base/c1.yml\nconvert:\n  io: uint8\n")
    cfg = load_config(config(tmp_path, BASE.replace("policy: int8", "policy: c2.yml")))
    assert cfg.policy.chain == (str((tmp_path / "c2.yml").resolve()), str(base.resolve()), "int8")
    convert = cfg.policy.policy.convert
    assert (convert.quantization, convert.io, convert.representative_samples) == (
        Quantization.int8, IoType.uint8, 50)
    assert cfg.policy.policy.description == "c1"


def test_extends_same_name_in_different_directories_is_not_a_cycle(tmp_path):
    # sub/p.yml -> sub/common.yml -> other/x.yml -> other/common.yml: four distinct files.
    write(tmp_path / "sub" / "p.yml", "extends: common.yml\n")
    write(tmp_path / "sub" / "common.yml", "extends: ../other/x.yml\ndescription: sub\n")
    write(tmp_path / "other" / "x.yml", "extends: common.yml\n")
    write(tmp_path / "other" / "common.yml", "convert: {quantization: float16}\n")
    got = load_policy_file(tmp_path / "sub" / "p.yml")
    assert len(got.chain) == 4
    assert got.policy.description == "sub"
    assert got.policy.convert.quantization is Quantization.float16


# ---------------------------------------------------------------- broken gate.yml: exact messages

# (id, gate.yml text, error class, field, line, exact message)
EXACT_CASES = [
    ("duplicate-key", "model: m.keras\nmodel: m.keras\ndata: {eval: eval.npz}\n",
     ConfigError, None, 2, "invalid YAML: duplicate key 'model' (first at line 1)"),
    ("duplicate-nested-key", BASE + "thresholds:\n  size_kb: {max: 1}\n  size_kb: {max: 2}\n",
     ConfigError, None, 8, "invalid YAML: duplicate key 'size_kb' (first at line 7)"),
    ("top-level-list", "- model\n- data\n", ConfigError, None, None,
     "expected a mapping with keys model, data, policy, thresholds; got a list"),
    ("top-level-scalar", "gate.yml\n", ConfigError, None, None,
     "expected a mapping with keys model, data, policy, thresholds; got a str"),
    ("top-level-number", "42\n", ConfigError, None, None,
     "expected a mapping with keys model, data, policy, thresholds; got a int"),
    ("empty-file", "", ConfigError, None, None,
     "expected a mapping with keys model, data, policy, thresholds; got an empty file"),
    ("comments-only", "# model: m.keras\n", ConfigError, None, None,
     "expected a mapping with keys model, data, policy, thresholds; got an empty file"),
    ("unknown-top-level-key", BASE + "treshold:\n  size_kb: {max: 1}\n",
     ConfigError, "treshold", 6, f"unknown key `treshold`: did you mean `thresholds`? keys valid here: {TOP_KEYS}"),
    ("unknown-nested-key", BASE + "thresholds:\n  accuracy:\n    maxdrop: 0.1\n",
     ConfigError, "thresholds.accuracy.maxdrop", 8, UNKNOWN_MAXDROP),
    ("unknown-data-key", BASE.replace("  eval:", "  test: eval.npz\n  eval:"),
     ConfigError, "data.test", 4, "unknown key `test`: keys valid here: train, eval"),
    ("string-for-number", BASE + "thresholds:\n  size_kb:\n    max: \"300\"\n",
     ConfigError, "thresholds.size_kb.max", 8, "Input should be a valid number (got '300')"),
    ("string-for-int", BASE + "benchmark:\n  runs: \"100\"\n",
     ConfigError, "benchmark.runs", 7, "Input should be a valid integer (got '100')"),
    ("number-for-string", "model: 5\ndata: {eval: eval.npz}\npolicy: float16\n",
     ConfigError, "model", 1, "Input should be a valid string (got 5)"),
    ("missing-model", "data: {eval: eval.npz}\npolicy: float16\n",
     ConfigError, "model", None, "required but missing"),
    ("missing-data-eval", "model: m.keras\ndata: {train: train.npz}\npolicy: float16\n",
     ConfigError, "data.eval", 2, "required but missing"),
    ("negative-size-limit", BASE + "thresholds:\n  size_kb: {max: -1}\n",
     ConfigError, "thresholds.size_kb.max", 7, "Input should be greater than 0 (got -1)"),
    ("zero-compression", BASE + "thresholds:\n  compression:\n    min: 0\n",
     ConfigError, "thresholds.compression.min", 8, "Input should be greater than 0 (got 0)"),
    ("accuracy-above-one", BASE + "thresholds:\n  accuracy:\n    min: 1.5\n",
     ConfigError, "thresholds.accuracy.min", 8, "Input should be less than or equal to 1 (got 1.5)"),
    ("nan-limit", BASE + "thresholds:\n  latency: {max_ratio: .nan}\n",
     ConfigError, "thresholds.latency.max_ratio", 7, "Input should be greater than 0 (got nan)"),
    ("unknown-size-measure", BASE + "thresholds:\n  size_kb: {max: 1, measure: zip}\n",
     ConfigError, "thresholds.size_kb.measure", 7, "Input should be 'raw' or 'gzip' (got 'zip')"),
    ("threads-zero", BASE + "benchmark:\n  threads: 0\n",
     ConfigError, "benchmark.threads", 7, "Input should be greater than or equal to 1 (got 0)"),
    ("threads-too-many", BASE + "benchmark:\n  threads: 1000\n",
     ConfigError, "benchmark.threads", 7, "Input should be less than or equal to 256 (got 1000)"),
    ("evaluate-top-k-string", BASE + "evaluate:\n  top_k: '1'\n",
     ConfigError, "evaluate.top_k", 7, "Input should be a valid list (got '1')"),
    ("representative-samples-zero",
     BASE.replace("policy: int8", "policy:\n  convert:\n    quantization: int8\n    representative_samples: 0\n"),
     PolicyError, "policy.convert.representative_samples", 8,
     "Input should be greater than or equal to 1 (got 0)"),
    ("unknown-inline-policy-key",
     BASE.replace("policy: int8", "policy:\n  convert:\n    quantisation: int8\n"),
     PolicyError, "policy.convert.quantisation", 7,
     f"unknown key `quantisation`: did you mean `quantization`? keys valid here: {CONVERT_KEYS}"),
    ("unknown-quantization",
     BASE.replace("policy: int8", "policy:\n  convert: {quantization: int4}\n"),
     PolicyError, "policy.convert.quantization", 6,
     "Input should be 'none', 'dynamic', 'float16', 'int8' or 'int16x8' (got 'int4')"),
    ("extends-not-a-string", BASE.replace("policy: int8", "policy:\n  extends: [int8]\n"),
     PolicyError, "policy.extends", 6, "extends must be a preset name or a path"),
    ("int8-without-train", "model: m.keras\ndata:\n  eval: eval.npz\npolicy: int8\n",
     ConfigError, "data.train", 2,
     "quantization: int8 calibrates on the train split, but data.train is not set"),
    ("int16x8-without-train", "model: m.keras\ndata:\n  eval: eval.npz\npolicy: int16x8\n",
     ConfigError, "data.train", 2,
     "quantization: int16x8 calibrates on the train split, but data.train is not set"),
    ("keras-without-policy", "model: m.keras\ndata:\n  eval: eval.npz\n",
     ConfigError, "policy", None,
     "required but missing: a Keras model needs a policy (a preset name, a path or an inline mapping)"),
]


@pytest.mark.parametrize("text, cls, field, line, message",
                         [c[1:] for c in EXACT_CASES], ids=[c[0] for c in EXACT_CASES])
def test_bad_config_exact(tmp_path, text, cls, field, line, message):
    path = config(tmp_path, text)
    err = config_error(path, cls)
    assert (err.file, err.field, err.line, err.message) == (str(path), field, line, message)


# (id, gate.yml text, error class, field, line, substrings of the message)
PARTIAL_CASES = [
    ("yaml-syntax-flow", "model: m.keras\ndata: {eval: eval.npz\npolicy: int8\n",
     ConfigError, None, 3, ["invalid YAML:", "expected ',' or '}'"]),
    ("yaml-syntax-indent", "model: m.keras\ndata:\n  eval: eval.npz\n   train: x\n",
     ConfigError, None, 4, ["invalid YAML:", "mapping values are not allowed here"]),
    ("yaml-unclosed-quote", "model: m.keras\npolicy: \"int8\nx: 1\n",
     ConfigError, None, 4, ["invalid YAML:", "quoted scalar"]),
    ("yaml-tab", "model: m.keras\ndata:\n\teval: eval.npz\n",
     ConfigError, None, 3, ["invalid YAML:", "'\\t'"]),
    ("yaml-python-tag", "model: !!python/object/apply:os.system [ls]\n",
     ConfigError, None, 1, ["invalid YAML:", "could not determine a constructor"]),
    ("yaml-two-documents", BASE + "---\n" + BASE,
     ConfigError, None, 6, ["invalid YAML:", "expected a single document"]),
    ("list-for-mapping", BASE + "thresholds:\n  - size_kb\n",
     ConfigError, "thresholds", 6, ["expected a mapping, got list ['size_kb']"]),
    ("null-for-mapping", BASE + "thresholds:\n",
     ConfigError, "thresholds", 6, ["is empty; remove the key or give it a mapping"]),
    ("string-for-mapping", "model: m.keras\ndata: eval.npz\npolicy: float16\n",
     ConfigError, "data", 2, ["expected a mapping, got str 'eval.npz'"]),
    ("io-int8-with-dynamic",
     BASE.replace("policy: int8", "policy:\n  convert:\n    quantization: dynamic\n    io: int8\n"),
     PolicyError, "policy.convert.io", 8,
     ["io: int8 needs quantization: int8 (got dynamic)", "use io: float32"]),
    ("inline-policy-not-a-mapping", BASE.replace("policy: int8", "policy: [int8]"),
     ConfigError, "policy", 5, ["policy must be a preset name, a path to a policy file, or a mapping; got list"]),
    ("model-wrong-extension", BASE.replace("m.keras", "train.npz"),
     ConfigError, "model", 1, ["expected a model file ending in .keras, .h5, .hdf5, .tflite",
                               "received train.npz"]),
    ("npz-is-a-directory", BASE.replace("eval: eval.npz", "eval: {npz: .}"),
     ConfigError, "data.eval.npz", 4, ["eval data is a directory, expected a file"]),
    ("images-is-a-file", BASE.replace("eval: eval.npz", "eval: {images: eval.npz}"),
     ConfigError, "data.eval.images", 4, ["eval data expected a directory of class subfolders, found a file"]),
    ("two-source-kinds", BASE.replace("eval: eval.npz", "eval: {npz: eval.npz, csv: eval.npz}"),
     ConfigError, "data.eval", 4, ["expected a path, or a mapping with exactly one of the keys npz, images"]),
    ("tfrecord-no-match", BASE.replace("eval: eval.npz", "eval: {tfrecord: 'nope-*.tfrecord', x: image}"),
     ConfigError, "data.eval.tfrecord", 4, ["eval data no file matches 'nope-*.tfrecord'"]),
    ("bad-scale", BASE.replace("eval: eval.npz", "eval: {images: ., scale: 1/zero}"),
     ConfigError, "data.eval.scale", 4, ["not a number or a fraction like 1/255"]),
    ("two-problems", BASE + "thresholds:\n  size_kb: {max: -1}\nbenchmark: {threads: 0}\n",
     ConfigError, "thresholds.size_kb.max", 7,
     ["2 problems:", "gate.yml:7: thresholds.size_kb.max: Input should be greater than 0 (got -1)",
      "gate.yml:8: benchmark.threads: Input should be greater than or equal to 1 (got 0)"]),
]


@pytest.mark.parametrize("text, cls, field, line, parts",
                         [c[1:] for c in PARTIAL_CASES], ids=[c[0] for c in PARTIAL_CASES])
def test_bad_config(tmp_path, text, cls, field, line, parts):
    path = config(tmp_path, text)
    err = config_error(path, cls)
    assert (err.file, err.field, err.line) == (str(path), field, line)
    for part in parts:
        assert part in err.message


def test_render_names_file_line_and_field(tmp_path):
    path = config(tmp_path, BASE + "thresholds:\n  accuracy:\n    maxdrop: 0.1\n")
    err = config_error(path)
    assert str(err) == err.render() == (
        f"{path}:8, field 'thresholds.accuracy.maxdrop': {UNKNOWN_MAXDROP}")
    assert err.to_dict() == {"kind": "config", "message": UNKNOWN_MAXDROP, "file": str(path),
                             "field": "thresholds.accuracy.maxdrop", "line": 8, "hint": None,
                             "exit_code": 2}


def test_unknown_preset_lists_the_known_ones(tmp_path):
    path = config(tmp_path, BASE.replace("policy: int8", "policy: int9"))
    err = config_error(path, PolicyError)
    assert (err.file, err.field, err.line) == (str(path), "policy", 5)
    assert err.message == "unknown preset 'int9'; known presets: " + ", ".join(preset_names())
    assert err.hint == "or give a path to a policy YAML file"


@pytest.mark.parametrize("key, field, line", [
    ("model", "model", 1), ("train", "data.train", 3), ("eval", "data.eval", 4)])
def test_missing_file(tmp_path, key, field, line):
    text = BASE.replace("m.keras", "nope.keras") if key == "model" else BASE.replace(f"{key}.npz", "nope.npz")
    path = config(tmp_path, text)
    err = config_error(path)
    missing = (tmp_path / ("nope.keras" if key == "model" else "nope.npz")).resolve()
    what = {"model": "model", "train": "train data", "eval": "eval data"}[key]
    assert (err.file, err.field, err.line) == (str(path), field, line)
    assert err.message == f"{what} not found: {missing}"
    assert err.hint == "paths are relative to the directory of gate.yml"


def test_directory_that_is_not_a_savedmodel(tmp_path):
    (tmp_path / "exported").mkdir()
    path = config(tmp_path, BASE.replace("m.keras", "exported"))
    err = config_error(path)
    assert (err.field, err.line) == ("model", 1)
    assert err.message == (f"model directory is not a SavedModel (no saved_model.pb): "
                           f"{(tmp_path / 'exported').resolve()}")


def test_policy_path_not_found(tmp_path):
    path = config(tmp_path, BASE.replace("policy: int8", "policy: policies/mine.yml"))
    err = config_error(path, PolicyError)
    assert (err.file, err.field, err.line) == (str(path), "policy", 5)
    assert err.message == f"policy file not found: {(tmp_path / 'policies/mine.yml').resolve()}"


def test_config_not_utf8(tmp_path):
    path = config(tmp_path, b"model: m.keras\n# caf\xe9\n")
    err = config_error(path)
    assert (err.file, err.field, err.line) == (str(path), None, None)
    assert err.message == "config file is not UTF-8 text (byte 20)"


def test_config_is_a_directory(tmp_path):
    err = config_error(tmp_path)
    assert (err.file, err.field) == (str(tmp_path), None)
    assert err.message == "expected a config YAML file, found a directory"


def test_config_not_found(tmp_path):
    err = config_error(tmp_path / "gate.yml")
    assert err.message == "config file not found"
    assert err.file == str(tmp_path / "gate.yml")


def test_utf8_bom_is_accepted(tmp_path):
    cfg = load_config(config(tmp_path, "\ufeff" + BASE))
    assert cfg.policy.name == "int8"


# Inputs that used to escape as TypeError / RecursionError / ValueError / OSError.
@pytest.mark.parametrize("text, cls, field, part", [
    ("? [a, b]\n: 1\n", ConfigError, None, "invalid YAML: found unhashable key of type list"),
    (BASE + "thresholds:\n  ? {a: 1}\n  : 1\n", ConfigError, None, "found unhashable key of type dict"),
    ("model: &x [*x]\ndata: {eval: eval.npz}\npolicy: float16\n", ConfigError, "model", "valid string"),
    ('model: "m\\0.keras"\ndata: {eval: eval.npz}\npolicy: float16\n', ConfigError, "model",
     "unusable model path 'm\\x00.keras': embedded null byte"),
    ('model: "\\ud800.keras"\ndata: {eval: eval.npz}\npolicy: float16\n', ConfigError, "model",
     "unusable model path '\\ud800.keras'"),
    (f"model: {'a' * 300}.keras\ndata: {{eval: eval.npz}}\npolicy: float16\n", ConfigError, "model",
     "File name too long"),
    (BASE.replace("eval: eval.npz", f"eval: {'e' * 300}.npz"), ConfigError, "data.eval", "File name too long"),
    (BASE.replace("policy: int8", 'policy: "p\\0.yml"'), PolicyError, "policy",
     "unusable policy path 'p\\x00.yml': embedded null byte"),
    (BASE.replace("policy: int8", f"policy: {'p' * 300}.yml"), PolicyError, "policy", "File name too long"),
    (BASE.replace("policy: int8", f"policy: {{extends: {'p' * 300}.yml}}"), PolicyError, "policy.extends",
     "File name too long"),
], ids=["unhashable-list-key", "unhashable-dict-key", "recursive-alias", "nul-in-path",
        "surrogate-in-path", "model-name-too-long", "eval-name-too-long", "nul-in-policy-path",
        "policy-name-too-long", "extends-name-too-long"])
def test_hostile_yaml_is_a_config_error(tmp_path, text, cls, field, part):
    path = config(tmp_path, text)
    err = config_error(path, cls)
    assert err.file == str(path) and err.field == field
    assert part in err.message


# ---------------------------------------------------------------- extends across files

def test_extends_cycle(tmp_path):
    a = write(tmp_path / "a.yml", "description: a\nextends: b.yml\n")
    b = write(tmp_path / "b.yml", "description: b\nextends: a.yml\n")
    a, b = a.resolve(), b.resolve()
    expected = f"extends cycle or chain too deep: {a} -> {b} -> {a}"
    err = policy_error(tmp_path / "a.yml")
    assert (Path(err.file), err.field, err.line, err.message) == (b, "extends", 2, expected)
    # the same cycle reached from gate.yml, and spelled differently
    for ref in ("a.yml", "./a.yml", str(a)):
        path = config(tmp_path, BASE.replace("policy: int8", f"policy: {ref}"))
        err = config_error(path, PolicyError)
        assert (Path(err.file), err.field, err.line, err.message) == (b, "extends", 2, expected)


def test_extends_itself(tmp_path):
    path = write(tmp_path / "self.yml", "extends: ./self.yml\n")
    err = policy_error(path)
    assert (err.field, err.line) == ("extends", 1)
    assert err.message == f"extends cycle or chain too deep: {path.resolve()} -> {path.resolve()}"


def test_extends_inline_cycle_through_a_file(tmp_path):
    write(tmp_path / "p.yml", "extends: q.yml\n")
    write(tmp_path / "q.yml", "extends: p.yml\n")
    path = config(tmp_path, BASE.replace("policy: int8", "policy: {extends: p.yml}"))
    err = config_error(path, PolicyError)
    assert err.field == "extends" and "extends cycle" in err.message
    assert Path(err.file) == (tmp_path / "q.yml").resolve()


def test_extends_chain_too_deep(tmp_path):
    for i in range(15):
        write(tmp_path / f"p{i}.yml", f"extends: p{i + 1}.yml\n")
    write(tmp_path / "p15.yml", "description: end\n")
    err = policy_error(tmp_path / "p0.yml")
    assert err.field == "extends" and err.message.startswith("extends cycle or chain too deep: ")
    # ten levels are fine
    assert load_policy_file(tmp_path / "p6.yml").policy.description == "end"


def test_invalid_parent_is_reported_in_its_own_file(tmp_path):
    parent = write(tmp_path / "parent.yml", "description: p\nconvert:\n  quantization: int4\n")
    write(tmp_path / "child.yml", "extends: parent.yml\ndescription: c\n")
    path = config(tmp_path, BASE.replace("policy: int8", "policy: child.yml"))
    for err in (config_error(path, PolicyError), policy_error(tmp_path / "child.yml")):
        assert Path(err.file) == parent.resolve()
        assert (err.field, err.line) == ("convert.quantization", 3)
        assert "(got 'int4')" in err.message


def test_invalid_grandparent_is_reported_in_its_own_file(tmp_path):
    grand = write(tmp_path / "g.yml", "convert:\n  speed: 11\n")
    write(tmp_path / "p.yml", "extends: g.yml\n")
    write(tmp_path / "c.yml", "extends: p.yml\n")
    err = policy_error(tmp_path / "c.yml")
    assert (Path(err.file), err.field, err.line, err.message) == (
        grand.resolve(), "convert.speed", 2, f"unknown key `speed`: keys valid here: {CONVERT_KEYS}")


def test_parent_with_bad_yaml_is_reported_in_its_own_file(tmp_path):
    parent = write(tmp_path / "parent.yml", "convert: [\n")
    write(tmp_path / "child.yml", "extends: parent.yml\n")
    err = policy_error(tmp_path / "child.yml", ConfigError)
    assert Path(err.file) == parent.resolve() and err.line == 2
    assert err.message.startswith("invalid YAML:")


def test_parent_not_a_mapping(tmp_path):
    parent = write(tmp_path / "parent.yml", "- int8\n")
    write(tmp_path / "child.yml", "extends: parent.yml\n")
    err = policy_error(tmp_path / "child.yml")
    assert Path(err.file) == parent.resolve()
    assert err.message == "a policy must be a mapping, got list"


def test_missing_parent_is_reported_at_the_extends_line(tmp_path):
    child = write(tmp_path / "child.yml", "description: c\nextends: missing.yml\n")
    err = policy_error(child)
    assert (err.file, err.field, err.line) == (str(child), "extends", 2)
    assert err.message == f"policy file not found: {(tmp_path / 'missing.yml').resolve()}"


def test_unknown_preset_in_extends(tmp_path):
    child = write(tmp_path / "child.yml", "extends: int9\n")
    err = policy_error(child)
    assert (err.file, err.field, err.line) == (str(child), "extends", 1)
    assert "known presets: " + ", ".join(preset_names()) in err.message


def test_override_that_breaks_an_inherited_field_points_at_the_child(tmp_path):
    write(tmp_path / "parent.yml", "convert:\n  quantization: int8\n  io: int8\n")
    child = write(tmp_path / "child.yml", "extends: parent.yml\nconvert:\n  quantization: dynamic\n")
    err = policy_error(child)
    assert (err.file, err.field, err.line) == (str(child), "convert.io", 2)
    assert "io: int8 needs quantization: int8 (got dynamic)" in err.message


# ---------------------------------------------------------------- broken policy files

@pytest.mark.parametrize("text, cls, field, line, message", [
    ("", PolicyError, None, None, "a policy must be a mapping, got NoneType"),
    ("- int8\n", PolicyError, None, None, "a policy must be a mapping, got list"),
    ("convert: {}\nconvert: {}\n", ConfigError, None, 2,
     "invalid YAML: duplicate key 'convert' (first at line 1)"),
    ("description: x\nconvert:\n  quantization: int8\n  representative: 5\n", PolicyError,
     "convert.representative", 4,
     f"unknown key `representative`: did you mean `representative_samples`? keys valid here: {CONVERT_KEYS}"),
    ("convert:\n  quantization: int8\n  representative_samples: \"5\"\n", PolicyError,
     "convert.representative_samples", 3, "Input should be a valid integer (got '5')"),
    ("convert:\n  representative_samples: 0\n", PolicyError,
     "convert.representative_samples", 2, "Input should be greater than or equal to 1 (got 0)"),
    ("convert: int8\n", PolicyError, "convert", 1,
     "expected a mapping, got str 'int8'"),
    ("description: 5\n", PolicyError, "description", 1, "Input should be a valid string (got 5)"),
    ("extends: 5\n", PolicyError, "extends", 1, "extends must be a preset name or a path"),
], ids=["empty", "list", "duplicate-key", "unknown-key", "string-for-int", "samples-zero",
        "string-for-mapping", "number-for-string", "extends-number"])
def test_bad_policy_file(tmp_path, text, cls, field, line, message):
    path = write(tmp_path / "policy.yml", text)
    err = policy_error(path, cls)
    assert (err.file, err.field, err.line, err.message) == (str(path), field, line, message)


def test_policy_io_needs_int8(tmp_path):
    path = write(tmp_path / "policy.yml", "convert:\n  quantization: float16\n  io: uint8\n")
    err = policy_error(path)
    assert (err.field, err.line) == ("convert.io", 3)
    assert err.message.startswith("io: uint8 needs quantization: int8 (got float16); use io: float32")


def test_policy_not_utf8(tmp_path):
    path = write(tmp_path / "policy.yml", b"description: \xff\n")
    err = policy_error(path, ConfigError)
    assert err.message == "policy file is not UTF-8 text (byte 13)"


def test_unknown_preset_by_name():
    err = policy_error(Path("no-such-preset"))
    assert err.message.startswith("unknown preset 'no-such-preset'; known presets: ")


def test_policy_file_not_found(tmp_path):
    err = policy_error(tmp_path / "nope.yml", ConfigError)
    assert (err.file, err.message) == (str(tmp_path / "nope.yml"), "policy file not found")


# ---------------------------------------------------------------- JSON Schema

@pytest.mark.parametrize("kind", ["policy", "config"])
def test_json_schema_is_valid(kind):
    schema = json_schema(kind)
    jsonschema.Draft202012Validator.check_schema(schema)
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    assert schema["additionalProperties"] is False


def validator(kind: str) -> jsonschema.Draft202012Validator:
    return jsonschema.Draft202012Validator(json_schema(kind))


def test_example_config_matches_schema():
    validator("config").validate(yaml.safe_load(EXAMPLE_CONFIG.read_text()))


@pytest.mark.parametrize("path", sorted(POLICIES.glob("*.yml")), ids=lambda p: p.stem)
def test_preset_matches_schema(path):
    validator("policy").validate(yaml.safe_load(path.read_text()))


def test_inline_policy_matches_config_schema():
    data = yaml.safe_load(BASE.replace("policy: int8", "policy:\n  extends: int8\n  convert: {io: int8}\n"))
    validator("config").validate(data)


@pytest.mark.parametrize("kind, data", [
    ("config", {**yaml.safe_load(BASE), "treshold": {}}),
    ("config", {**yaml.safe_load(BASE), "thresholds": {"accuracy": {"maxdrop": 0.1}}}),
    ("config", {**yaml.safe_load(BASE), "policy": {"convert": {"quantisation": "int8"}}}),
    ("config", {**yaml.safe_load(BASE), "benchmark": {"threads": 0}}),
    ("config", {"data": {"eval": "eval.npz"}}),
    ("policy", {"convert": {"quantization": "int8", "bogus": 1}}),
    ("policy", {"description": "x", "bogus": 1}),
    ("policy", {"convert": {"quantization": "int4"}}),
], ids=["unknown-top", "unknown-nested", "unknown-inline-policy", "threads-zero", "missing-model",
        "unknown-convert-key", "unknown-policy-key", "bad-enum"])
def test_schema_rejects(kind, data):
    assert list(validator(kind).iter_errors(data))


def test_unknown_key_deep_in_lists_and_maps_gets_the_closest_key_and_its_siblings(tmp_path):
    step = config(tmp_path, BASE.replace("policy: int8", "policy:\n  steps:\n    - prune:\n        layers: "
                                         "{exclude_name: [head]}\n"))
    err = config_error(step, PolicyError)
    assert err.field == "policy.steps[0].prune.layers.exclude_name"
    assert err.message.startswith("unknown key `exclude_name`: did you mean `exclude_names`? keys valid here: "
                                  "include, exclude, include_names, exclude_names,")
    metric = config(tmp_path, BASE + "thresholds:\n  metrics:\n    mae: {max_increse: 0.1}\n")
    assert config_error(metric).message == (
        "unknown key `max_increse`: did you mean `max_increase`? keys valid here: min, max, max_drop, "
        "max_increase, max_drop_vs_base, max_increase_vs_base, mode, confidence")
