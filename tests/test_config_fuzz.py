"""Property: whatever YAML a user writes, loading it gives a config/policy or a GateError
with exit code 2 -- never a traceback."""
from __future__ import annotations

from pathlib import Path

import yaml
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from gate.config.load import GateConfig, load_config
from gate.config.policies import ResolvedPolicy, load_policy_file, preset_names
from gate.errors import GateError

SETTINGS = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])

# ---------------------------------------------------------------- a project to point at

FILES = ["m.keras", "m.h5", "m.tflite", "m.onnx", "train.npz", "eval.npz"]
POLICY_FILES = {
    "p.yml": "description: ok\nconvert: {quantization: float16}\n",
    "child.yml": "extends: int8\nconvert: {representative_samples: 5}\n",
    "bad.yml": "convert: {quantization: int4}\n",
    "cyc1.yml": "extends: cyc2.yml\n",
    "cyc2.yml": "extends: cyc1.yml\n",
    "empty.yml": "",
    "list.yml": "- int8\n",
    "broken.yml": "convert: [\n",
}


def make_project(root: Path) -> None:
    """Once per test function (tmp_path is shared by its examples; nothing here changes)."""
    if (root / "notutf8.yml").exists():
        return
    for name in FILES:
        (root / name).write_bytes(b"")
    for name, text in POLICY_FILES.items():
        (root / name).write_text(text)
    (root / "saved").mkdir(exist_ok=True)
    (root / "saved" / "saved_model.pb").write_bytes(b"")
    (root / "emptydir").mkdir(exist_ok=True)
    (root / "notutf8.yml").write_bytes(b"description: \xff\n")


# ---------------------------------------------------------------- strategies

SCHEMA_KEYS = ["model", "data", "train", "eval", "policy", "extends", "description", "convert",
               "quantization", "io", "representative_samples", "thresholds", "size_kb", "max", "min",
               "measure", "compression", "accuracy", "max_drop", "top_k", "latency_ms", "p50_max",
               "p99_max", "latency", "max_ratio", "benchmark", "threads", "warmup", "runs",
               "min_time_s", "evaluate", "batch_size", "max_examples", "sparsity", "steps", "verify",
               "prune", "cluster", "qat", "structured_prune", "schedule", "target_sparsity",
               "final_sparsity", "begin_step", "end_step", "clusters", "ratio", "on_loss", "layers",
               "finetune", "epochs"]
WORDS = (FILES + list(POLICY_FILES) + preset_names() + [
    "saved", "emptydir", "missing.keras", "notutf8.yml", "", ".", "..", "raw", "gzip", "none",
    "dynamic", "float32", "uint8", "int4", "../m.keras", "/dev/null", "sub/p.yml"])

scalars = st.one_of(
    st.none(), st.booleans(),
    st.integers(min_value=-(2 ** 70), max_value=2 ** 70), st.integers(min_value=-3, max_value=300),
    st.floats(allow_nan=True, allow_infinity=True), st.floats(min_value=0, max_value=2),
    st.text(max_size=20), st.sampled_from(WORDS), st.sampled_from(SCHEMA_KEYS),
)
keys = st.one_of(st.sampled_from(SCHEMA_KEYS), st.text(max_size=8), st.integers(-2, 2), st.none(),
                 st.booleans())
values = st.recursive(scalars, lambda inner: st.one_of(
    st.lists(inner, max_size=4), st.dictionaries(keys, inner, max_size=5)), max_leaves=20)


def maybe(strategy):
    """Mostly the well-shaped strategy; about one time in ten any value in its place
    (a mid-range pick: hypothesis favours the ends of integer ranges)."""
    return st.integers(0, 9).flatmap(lambda i: values if i == 5 else strategy)


convert = st.fixed_dictionaries({}, optional={
    "quantization": maybe(st.sampled_from(["none", "dynamic", "float16", "int8", "int16x8", "int4"])),
    "io": maybe(st.sampled_from(["float32", "int8", "uint8", "int16"])),
    "representative_samples": maybe(st.integers(-1, 300)),
    "sparsity": maybe(st.booleans()),
    "bogus": values,
})
STEP_KEYS = ["schedule", "target_sparsity", "final_sparsity", "initial_sparsity", "begin_step", "end_step",
             "clusters", "init", "ratio", "norm", "layers", "finetune", "sparsity_m_by_n", "block_size"]
step = st.dictionaries(st.sampled_from(["prune", "cluster", "qat", "structured_prune"]),
                       maybe(st.dictionaries(st.sampled_from(STEP_KEYS), values, max_size=4)),
                       min_size=1, max_size=2)
policy = st.fixed_dictionaries({}, optional={
    "description": maybe(st.text(max_size=30)),
    "steps": maybe(st.lists(maybe(step), max_size=3)),
    "verify": maybe(st.dictionaries(st.sampled_from(["on_loss", "sparsity_tolerance", "cluster_tolerance"]),
                                    values, max_size=3)),
    "extends": maybe(st.sampled_from(preset_names() + list(POLICY_FILES) + ["nope", "nope.yml", "notutf8.yml"])),
    "convert": maybe(convert),
})
number = maybe(st.one_of(st.floats(-1, 2), st.integers(-1, 500)))


def limits(*names: str):
    return st.fixed_dictionaries({}, optional={n: number for n in names} | {
        "measure": maybe(st.sampled_from(["raw", "gzip", "zip"]))})


config = st.fixed_dictionaries({
    "model": maybe(st.sampled_from(["m.keras", "m.h5", "m.tflite", "saved", "m.keras", "m.tflite", "m.keras",
                                    "m.onnx", "emptydir", "missing.keras"])),
    "data": maybe(st.fixed_dictionaries({"eval": maybe(st.sampled_from(["eval.npz", "missing.npz", "emptydir"]))},
                                        optional={"train": maybe(st.sampled_from(["train.npz", "missing.npz"]))})),
    "policy": st.one_of(st.sampled_from(preset_names() + list(POLICY_FILES) + ["int9", "nope.yml"]),
                        policy, st.none(), values),
}, optional={
    "thresholds": maybe(st.fixed_dictionaries({}, optional={
        "size_kb": maybe(limits("max")), "compression": maybe(limits("min")),
        "accuracy": maybe(st.fixed_dictionaries({}, optional={"min": number, "max_drop": number, "top_k": number})),
        "latency_ms": maybe(limits("p50_max", "p99_max")), "latency": maybe(limits("max_ratio"))})),
    "benchmark": maybe(st.fixed_dictionaries({}, optional={
        k: number for k in ("threads", "warmup", "runs", "min_time_s")})),
    "evaluate": maybe(st.fixed_dictionaries({}, optional={
        "top_k": maybe(st.lists(st.integers(-1, 10), max_size=3)), "batch_size": number})),
})

# Hand-written YAML that safe_dump never produces: anchors, recursion, tags, odd keys, escapes.
FRAGMENTS = [
    "model: m.keras\n", "data: {train: train.npz, eval: eval.npz}\n", "policy: int8\n",
    "policy: child.yml\n", "policy: {extends: cyc1.yml}\n", "model: &x [*x]\n", "a: &y {b: *y}\n",
    "? [a]\n: 1\n", "? {a: 1}\n: 1\n", "? - 1\n: 2\n", "model: !!binary aGk=\n",
    "model: !!python/name:os.system\n", "model: !custom x\n", "<<: {model: m.keras}\n",
    'model: "m\\0.keras"\n', 'model: "\\ud800"\n', "model: " + "x" * 300 + "\n",
    "policy: " + "p" * 300 + ".yml\n", "thresholds:\n  size_kb: {max: .inf}\n",
    "thresholds:\n  accuracy:\n    maxdrop: 0.1\n", "model: 2020-01-01\n", "data:\n\teval: x\n",
    "---\n", "...\n", "%YAML 1.1\n", "- a\n", "[\n", "{\n", "'\n", "\"\n", "&a\n", "*a\n", "? \n",
    "  - x\n", "model: m.keras\nmodel: m.h5\n", "\x00\n", "\ufeff", "\x85\n", "#\n", "benchmark: {threads: 0}\n",
]
fragment_text = st.lists(st.sampled_from(FRAGMENTS), min_size=1, max_size=6).map("".join)


def dumped(strategy):
    return st.builds(lambda data, flow, uni: yaml.safe_dump(data, default_flow_style=flow, allow_unicode=uni),
                     strategy, st.sampled_from([False, True, None]), st.booleans())




def documents(shaped):
    """Half well-shaped documents (to get deep into validation), half anything."""
    anything = st.one_of(st.text(max_size=200), st.binary(max_size=100), fragment_text, dumped(values),
                         st.tuples(dumped(shaped), fragment_text).map("".join))
    return st.one_of(dumped(shaped), dumped(shaped), anything)


config_documents = documents(config)
policy_documents = documents(policy)


def write(path: Path, document: str | bytes) -> None:
    if isinstance(document, bytes):
        path.write_bytes(document)
    else:
        path.write_text(document, encoding="utf-8", errors="surrogatepass")


# ---------------------------------------------------------------- properties

def loads_or_bad_input(load, path, expected_type) -> None:
    """The property: a result of the expected type, or a GateError with exit code 2 that
    names the file and renders -- never any other exception."""
    try:
        result = load(path)
    except GateError as err:
        event(f"{type(err).__name__} {err.field}")
        assert err.exit_code == 2, err.to_dict()
        assert err.file, err.to_dict()
        assert err.render()
    else:
        event("loaded")
        assert isinstance(result, expected_type)


@SETTINGS
@given(document=config_documents)
def test_load_config_returns_config_or_bad_input(tmp_path, document):
    make_project(tmp_path)
    path = tmp_path / "gate.yml"
    write(path, document)
    loads_or_bad_input(load_config, path, GateConfig)


@SETTINGS
@given(document=policy_documents)
def test_load_policy_file_returns_policy_or_bad_input(tmp_path, document):
    make_project(tmp_path)
    path = tmp_path / "fuzz.yml"
    write(path, document)
    loads_or_bad_input(load_policy_file, path, ResolvedPolicy)
