"""gate.yml -> one validated, typed, frozen GateConfig (no TF). Every error names the
file, the field path and the line; each threshold keeps its line, so checks point at it."""
from __future__ import annotations

import json
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Mapping

from pydantic import ValidationError

from gate.config.models import entry_doc, entry_sha256, is_multi, model_names
from gate.config.policies import ResolvedPolicy, looks_like_preset, resolve_policy
from gate.config.schema import BenchmarkSpec, ConfigFile, EvaluateSpec, Thresholds
from gate.config.validation import field_path, raise_validation
from gate.config.yamlio import Loc, YamlDoc, read_yaml
from gate.config.sources import KINDS, SourceRef, resolve
from gate.errors import ConfigError, DataError, GateError, ModelError
from gate.formats import LFS_HINT, LFS_MESSAGE, MODEL_FILE_FORMATS, SAVEDMODEL_MARKER, format_of, is_lfs_pointer

DEFAULT_CONFIG = "gate.yml"


@dataclass(frozen=True)
class GateConfig:
    path: Path                 # gate.yml
    root: Path                 # directory paths are resolved against
    file: ConfigFile           # as validated
    model_path: Path
    train_path: Path | None
    eval_path: Path
    policy: ResolvedPolicy | None
    sha256: str                # of gate.yml's bytes, for provenance
    threshold_lines: Mapping[str, int] = field(default_factory=dict)  # "accuracy.max_drop" -> its line
    eval_source: SourceRef | None = None    # data.eval resolved (gate.config.sources); eval_path is its path
    train_source: SourceRef | None = None
    policy_override: str | None = None   # `gate check --policy`: used instead of gate.yml's policy
    name: str | None = None    # the entry under `models:` (None: a single-model gate.yml)
    entry_sha256: str = ""     # of this model's config as merged (gate.config.models)

    @property
    def thresholds(self) -> Thresholds:
        return self.file.thresholds

    @property
    def benchmark(self) -> BenchmarkSpec:
        return self.file.benchmark

    @property
    def evaluate(self) -> EvaluateSpec:
        return self.file.evaluate

    def threshold_line(self, name: str) -> int | None:
        """The line of a check's threshold (`proxies.macs.max`), or of the nearest key above
        it inside `thresholds:`."""
        parts = name.split(".")
        while parts:
            line = self.threshold_lines.get(".".join(parts))
            if line is not None:
                return line
            parts.pop()
        return None

    def relative(self, path: Path | None) -> str | None:
        """A path as the report records it: relative to gate.yml's directory when inside it."""
        if path is None:
            return None
        try:
            return str(path.relative_to(self.root))
        except ValueError:
            return str(path)


def _existing(doc: YamlDoc, root: Path, value: str, loc: Loc, *, what: str, allow_dir: bool = False) -> Path:
    try:
        path = (root / value).resolve()
        exists = path.exists()
    except (OSError, ValueError) as exc:  # NUL byte, lone surrogate, name too long
        raise ConfigError(f"unusable {what} path {value!r}: {getattr(exc, 'strerror', None) or exc}",
                          file=doc.file, field=field_path(loc), line=doc.line_of(loc)) from None
    if not exists:
        raise ConfigError(f"{what} not found: {path}", file=doc.file, field=field_path(loc), line=doc.line_of(loc),
                          hint="paths are relative to the directory of gate.yml")
    if path.is_dir() and not allow_dir:
        raise ConfigError(f"{what} is a directory, expected a file: {path}", file=doc.file,
                          field=field_path(loc), line=doc.line_of(loc))
    return path


def config_models(path: str | Path = DEFAULT_CONFIG) -> list[str]:
    """The model names of a gate.yml with `models:`; [] for a single-model gate.yml."""
    return model_names(read_yaml(Path(path), kind="config"))


def load_config(path: str | Path = DEFAULT_CONFIG, model: str | None = None, *,
                policy: str | None = None) -> GateConfig:
    """gate.yml, validated: one model's config (a gate.yml with `models:` needs `model`, the
    entry's name). `policy` (a preset name, or a policy file's path relative to the current
    directory) replaces gate.yml's `policy:` for this run (`gate check --policy`)."""
    path = Path(path)
    override = policy if policy is None or looks_like_preset(policy) else str(Path(policy).resolve())
    doc = read_yaml(path, kind="config")
    if is_multi(doc.data):
        names = model_names(doc)
        if model is None:
            raise ConfigError(f"gate.yml lists {len(names)} models ({', '.join(names)}): name one",
                              file=doc.file, field="models", line=doc.line_of(("models",)),
                              hint="`gate check` runs them all; `--model NAME` runs one")
        entry = doc.data["models"][model] if model in names else {}
        try:
            return _load(path, entry_doc(doc, model), model, override)
        except GateError as err:   # name the field where it is written: in the entry, or a default
            if err.field and err.field.split(".")[0].split("[")[0] in entry:
                err.field = f"models.{model}.{err.field}"
            raise
    if model is not None:
        raise ConfigError(f"no model named {model!r}: this gate.yml has no `models:` mapping (it is one model)",
                          file=doc.file, field="models", hint="drop --model, or list the models under `models:`")
    return _load(path, doc, None, override)


def _load(path: Path, doc: YamlDoc, model: str | None, override: str | None) -> GateConfig:
    if not isinstance(doc.data, dict):
        got = "an empty file" if doc.data is None else f"a {type(doc.data).__name__}"
        raise ConfigError(f"expected a mapping with keys model, data, policy, thresholds; got {got}",
                          file=doc.file)
    policy_value = doc.data.get("policy")
    if policy_value is not None and not isinstance(policy_value, (str, dict)):
        raise ConfigError("policy must be a preset name, a path to a policy file, or a mapping; got "
                          f"{type(policy_value).__name__}", file=doc.file, field="policy",
                          line=doc.line_of(("policy",)))
    try:
        cfg = ConfigFile.model_validate(doc.data)
    except ValidationError as exc:
        raise_validation(exc, doc, doc.data, model=ConfigFile)
    root = path.resolve().parent
    if override is not None:
        cfg = cfg.model_copy(update={"policy": override})
    model_path = _existing(doc, root, cfg.model, ("model",), what="model", allow_dir=True)
    if model_path.is_dir() and not (model_path / SAVEDMODEL_MARKER).exists():
        raise ConfigError(f"model directory is not a SavedModel (no saved_model.pb): {model_path}",
                          file=doc.file, field="model", line=doc.line_of(("model",)))
    if model_path.is_file() and format_of(model_path) is None:
        raise ConfigError(f"expected a model file ending in {', '.join(MODEL_FILE_FORMATS)} or a SavedModel "
                          f"directory; received {model_path.name}", file=doc.file, field="model",
                          line=doc.line_of(("model",)))
    if model_path.is_file() and is_lfs_pointer(model_path):
        raise ModelError(LFS_MESSAGE, file=str(model_path), field="model", hint=LFS_HINT)
    eval_source = _source(doc, root, cfg.data.eval, "eval")
    train_source = _source(doc, root, cfg.data.train, "train") if cfg.data.train else None
    eval_path = eval_source.path
    train_path = train_source.path if train_source else None
    is_tflite = format_of(model_path) == "tflite"
    policy = None
    if cfg.policy is not None:
        try:
            policy = resolve_policy(cfg.policy, doc=doc, base_dir=root)
        except GateError as err:
            if override is not None and err.file == doc.file and err.field == "policy":
                err.file, err.field, err.line = None, "--policy", None   # not gate.yml's policy: the option's
            raise
    elif not is_tflite:
        raise ConfigError("required but missing: a Keras model needs a policy (a preset name, a path or "
                          "an inline mapping)", file=doc.file, field="policy",
                          hint="e.g. `policy: int8`; `gate policy list` shows the presets")
    if policy and policy.policy.convert.calibrates and train_path is None:
        raise ConfigError(f"{_calibrating(policy.policy.convert)} calibrates on the train "
                          "split, but data.train is not set", file=doc.file, field="data.train",
                          line=doc.line_of(("data",)))
    acc = cfg.thresholds.accuracy
    if acc and acc.top_k not in cfg.evaluate.top_k:
        cfg = cfg.model_copy(update={"evaluate": cfg.evaluate.model_copy(
            update={"top_k": sorted(set(cfg.evaluate.top_k) | {acc.top_k})})})
    sha = doc.sha256               # the bytes read_yaml parsed: gate.yml is read once
    lines = {".".join(map(str, loc[1:])): line for loc, line in doc.lines.items()
             if len(loc) > 1 and loc[0] == "thresholds"}
    return GateConfig(path=path.resolve(), root=root, file=cfg, model_path=model_path, train_path=train_path,
                      eval_path=eval_path, policy=policy, sha256=sha, threshold_lines=lines,
                      eval_source=eval_source, train_source=train_source, policy_override=override,
                      name=model, entry_sha256=entry_sha256(doc.data))


def _source(doc: YamlDoc, root: Path, value, name: str) -> SourceRef:
    """data.<name> resolved to paths; a missing path or an LFS pointer names the field."""
    loc = ("data", name)
    try:
        ref, why = resolve(value, root, f"data.{name}")
    except (OSError, ValueError) as exc:  # NUL byte, lone surrogate, name too long
        raise ConfigError(f"unusable {name} data path: {getattr(exc, 'strerror', None) or exc}",
                          file=doc.file, field=field_path(loc), line=doc.line_of(loc)) from None
    if ref is None:
        kind = value if isinstance(value, str) else next(k for k in KINDS if getattr(value, k, None))
        where = field_path(loc) if isinstance(value, str) else f"{field_path(loc)}.{kind}"
        raise ConfigError(f"{name} data {why}", file=doc.file, field=where, line=doc.line_of(loc),
                          hint="paths are relative to the directory of gate.yml")
    for file in ref.files:
        if is_lfs_pointer(file):
            raise DataError(LFS_MESSAGE, file=str(file), field=ref.field, hint=LFS_HINT)
    return ref


def with_target(cfg: GateConfig, target: str | None) -> GateConfig:
    """`gate check --target local`: gate.yml's benchmark.target replaced for this run
    (evaluate.on_target, which needs the board, is switched off with it)."""
    if target is None:
        return cfg
    if target != "local":
        raise ConfigError(f"expected --target local (the only target that needs no settings); received {target}",
                          field="benchmark.target", hint="set a device target in gate.yml under benchmark.target")
    file = cfg.file.model_copy(update={"benchmark": cfg.file.benchmark.model_copy(update={"target": "local"}),
                                       "evaluate": cfg.file.evaluate.model_copy(update={"on_target": False})})
    return replace(cfg, file=file)


def _calibrating(convert) -> str:
    return f"recipe: {convert.recipe.value}" if convert.recipe is not None else \
        f"quantization: {convert.quantization.value}"


def config_summary(cfg: GateConfig) -> dict:
    """The config as recorded in the report (paths relative to the config's directory)."""
    return {
        "path": str(cfg.path), "sha256": cfg.sha256, "model": cfg.relative(cfg.model_path),
        **({"name": cfg.name, "entry_sha256": cfg.entry_sha256} if cfg.name else {}),
        "data": {"train": cfg.relative(cfg.train_path), "eval": cfg.relative(cfg.eval_path),
                 **{f"{ref.where.split('.')[1]}_source": ref.describe()
                    for ref in (cfg.train_source, cfg.eval_source) if ref is not None and ref.kind != "npz"}},
        "thresholds": json.loads(cfg.thresholds.model_dump_json(exclude_none=True)),
        "benchmark": cfg.benchmark.model_dump(mode="json"),
        "evaluate": cfg.evaluate.model_dump(mode="json"),
    }
