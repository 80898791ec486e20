"""Generate gate/scan/keras3_allowlist.py: the Keras 3 built-ins a model config may name,
as exact (module, class) pairs, by introspecting the installed Keras 3 once.

A development-time script: the scanner itself stays static (it never imports Keras).
Re-run it when the keras pin moves, review the diff, commit both:

    python scripts/gen_keras3_allowlist.py            # rewrite gate/scan/keras3_allowlist.py
    python scripts/gen_keras3_allowlist.py --print    # write the table to stdout (tests compare)
"""
from __future__ import annotations

import importlib
import inspect
import os
import sys
from pathlib import Path

os.environ.pop("TF_USE_LEGACY_KERAS", None)     # Keras 3 itself, not tf_keras
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

TARGET = Path(__file__).resolve().parent.parent / "gate" / "scan" / "keras3_allowlist.py"

# Public namespaces whose classes a model config may name (module string == namespace).
CLASS_NAMESPACES = ["keras", "keras.layers", "keras.models", "keras.initializers",
                    "keras.regularizers", "keras.constraints", "keras.optimizers",
                    "keras.optimizers.schedules", "keras.losses", "keras.metrics",
                    "keras.dtype_policies", "keras.quantizers"]
FUNCTION_NAMESPACES = ["keras.activations", "keras.losses", "keras.metrics"]
# Modules of the Operation classes Keras writes for keras.ops calls in a functional graph.
OPS_MODULES = ["keras.src.ops.numpy", "keras.src.ops.nn", "keras.src.ops.math",
               "keras.src.ops.image", "keras.src.ops.linalg", "keras.src.ops.core"]

# Never allowed, whatever the module: code carriers, foreign wrappers, abstract bases.
EXCLUDE = {
    "Lambda": "runs Python code",
    "TFSMLayer": "loads a SavedModel from a path outside the file",
    "TorchModuleWrapper": "unpickles a torch module",
    "JaxLayer": "wraps Python functions", "FlaxLayer": "wraps Python code",
    "Layer": "abstract base (a custom subclass would need code)",
    "Wrapper": "abstract base", "Operation": "abstract base",
    "Loss": "abstract base", "Metric": "abstract base", "Optimizer": "abstract base",
    "Initializer": "abstract base", "Regularizer": "abstract base",
    "Constraint": "abstract base", "LearningRateSchedule": "abstract base",
    "Quantizer": "abstract base", "QuantizationConfig": "abstract base",
    "Model": "base class: a config says Functional or Sequential",
    "Reduce": "base",
    "InputSpec": "not serialized in configs",
    "Function": "keras.Function graph, not written by model.save",
    "Variable": "not a config object", "KerasTensor": "written as the __keras_tensor__ marker",
    "Cond": "control flow, takes Python callables", "WhileLoop": "takes Python callables",
    "Scan": "takes Python callables", "Map": "takes Python callables",
    "FoldLeft": "takes Python callables", "FoldRight": "takes Python callables",
    "AssociativeScan": "takes Python callables", "ForiLoop": "takes Python callables",
    "Switch": "takes Python callables", "VectorizedMap": "takes Python callables",
    "CustomGradient": "takes Python callables", "Vectorize": "takes Python callables",
}


def classes_of(module_name: str) -> set[str]:
    mod = importlib.import_module(module_name)
    return {name for name in dir(mod)
            if inspect.isclass(obj := getattr(mod, name)) and hasattr(obj, "from_config")
            and name not in EXCLUDE and not name.startswith("_") and obj.__module__.startswith("keras.")}


def functions_of(module_name: str) -> set[str]:
    mod = importlib.import_module(module_name)
    return {n for n in dir(mod) if not n.startswith("_") and inspect.isfunction(getattr(mod, n))
            and n not in ("get", "serialize", "deserialize")}


def ops_classes(module_name: str) -> set[str]:
    import keras
    from keras.src.ops.operation import Operation

    mod = importlib.import_module(module_name)
    return {n for n in dir(mod) if inspect.isclass(obj := getattr(mod, n)) and issubclass(obj, Operation)
            and obj.__module__ == module_name and n not in EXCLUDE and not issubclass(obj, keras.layers.Layer)}


def _wrapped(names: list[str], indent: str) -> list[str]:
    lines, line = [], indent
    for name in names:
        if len(line) + len(name) + 1 > 100 and line.strip():
            lines.append(line.rstrip())
            line = indent
        line += name + " "
    if line.strip():
        lines.append(line.rstrip())
    return lines


def render() -> str:
    import keras

    table: dict[str, set[str]] = {ns: classes_of(ns) for ns in CLASS_NAMESPACES}
    table["keras.src.models.functional"] = {"Functional"}   # written with registered_name Functional
    for m in OPS_MODULES:
        table[m] = ops_classes(m)
    functions = set().union(*(functions_of(ns) for ns in FUNCTION_NAMESPACES))
    lines = ['"""Keras 3 built-ins a model config may name, as exact (module, class) pairs: the `module`',
             "string Keras 3 writes -> the class names it resolves there to a built-in.",
             "",
             f"Generated by scripts/gen_keras3_allowlist.py from keras {keras.__version__}; do not edit by hand.",
             'Static on purpose: the scanner never imports Keras."""',
             "from __future__ import annotations",
             "",
             f'KERAS_VERSION = "{keras.__version__}"',
             "",
             "KERAS3_CLASSES: dict[str, frozenset[str]] = {"]
    for mod in sorted(table):
        lines.append(f'    "{mod}": frozenset("""')
        lines += _wrapped(sorted(table[mod]), "        ")
        lines.append('    """.split()),')
    lines += ["}", "", "# Built-in functions a {\"class_name\": \"function\"} reference may name.",
              'KERAS3_FUNCTIONS: frozenset[str] = frozenset("""']
    lines += _wrapped(sorted(functions), "    ")
    lines += ['""".split())', "", "# Refused whatever the module, and why.", "EXCLUDED: dict[str, str] = {"]
    lines += [f"    {k!r}: {v!r}," for k, v in sorted(EXCLUDE.items())]
    lines += ["}", ""]
    return "\n".join(lines)


def main(argv: list[str]) -> int:
    text = render()
    if "--print" in argv:
        sys.stdout.write(text)
    else:
        TARGET.write_text(text, encoding="utf-8")
        print(f"wrote {TARGET}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
