"""The package layout is the architecture (docs/architecture.md): who may import whom, and
where TensorFlow, tfmot and LiteRT may be imported. Read from the source (every import,
including the lazy ones inside functions), and checked in fresh interpreters for the
commands that must stay light."""
from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

GATE = Path(__file__).resolve().parent.parent / "gate"

# The layers, lowest first: a package may import only packages before it (and itself).
# Top-level modules (errors, formats, console, provenance) are the floor; cli is the roof.
LAYERS = ("errors", "formats", "units", "console", "config", "scan", "measure", "provenance", "optimize", "verdict",
          "report", "github", "run", "action", "cli", "__main__")

TF_FAMILY = {"tensorflow", "tf_keras", "keras", "tensorflow_model_optimization"}
# Where each heavy dependency may be imported (by package of gate/).
ALLOWED = {
    "tensorflow": {"measure", "optimize"},
    "tf_keras": {"measure", "optimize"},
    "keras": {"measure", "optimize"},
    "tensorflow_model_optimization": {"measure", "optimize"},
    "ai_edge_litert": {"measure"},
    "litert_quantizer": {"measure"},
    "h5py": {"scan", "measure"},
}


def modules() -> dict[str, ast.Module]:
    out = {}
    for path in sorted(GATE.rglob("*.py")):
        rel = path.relative_to(GATE.parent).with_suffix("")
        name = ".".join(rel.parts).removesuffix(".__init__")
        out[name] = ast.parse(path.read_text(encoding="utf-8"))
    return out


def imports(tree: ast.Module, *, module_level_only: bool = False) -> set[str]:
    """Absolute module names imported anywhere in the file (not inside `if TYPE_CHECKING:`)."""
    found: set[str] = set()

    def visit(node: ast.AST, top: bool) -> None:
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            return
        if isinstance(node, ast.Import) and (top or not module_level_only):
            found.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module and (top or not module_level_only):
            found.add(node.module)
            found.update(f"{node.module}.{a.name}" for a in node.names)
        for child in ast.iter_child_nodes(node):
            visit(child, top and not isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)))

    visit(tree, True)
    return found


def package_of(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "gate"


MODULES = modules()


def test_every_package_is_in_a_layer():
    assert {package_of(m) for m in MODULES} - {"gate"} <= set(LAYERS)


@pytest.mark.parametrize("module", sorted(MODULES))
def test_imports_only_lower_layers(module):
    mine = LAYERS.index(package_of(module)) if package_of(module) in LAYERS else -1
    upward = sorted(name for name in imports(MODULES[module]) if name.startswith("gate.")
                    and name.split(".")[1] in LAYERS and LAYERS.index(name.split(".")[1]) > mine)
    assert not upward, f"{module} (layer {package_of(module)}) imports from a higher layer: {upward}"


@pytest.mark.parametrize("module", sorted(MODULES))
def test_heavy_dependencies_only_where_allowed(module):
    pkg = package_of(module)
    bad = sorted(name for name in imports(MODULES[module])
                 if name.split(".")[0] in ALLOWED and pkg not in ALLOWED[name.split(".")[0]])
    assert not bad, f"{module} imports {bad}; allowed only in {[ALLOWED[b.split('.')[0]] for b in bad]}"


def test_no_module_level_import_cycle():
    graph = {m: {n for n in imports(t, module_level_only=True) if n in MODULES and n != m}
             for m, t in MODULES.items()}
    done: set[str] = set()

    def walk(node: str, path: list[str]) -> None:
        if node in path:
            raise AssertionError("import cycle: " + " -> ".join(path[path.index(node):] + [node]))
        if node in done:
            return
        for nxt in sorted(graph[node]):
            walk(nxt, path + [node])
        done.add(node)

    for m in sorted(graph):
        walk(m, [])


def test_tfenv_is_where_tensorflow_itself_is_imported():
    """tfmot internals (registries) are imported in optimize/, TF itself only via tfenv."""
    direct = sorted(m for m, t in MODULES.items() if {"tensorflow", "tf_keras", "keras"} & {
        n.split(".")[0] for n in imports(t)} and m != "gate.measure.tfenv")
    assert not direct, f"TensorFlow/Keras imported outside gate.measure.tfenv: {direct}"


LIGHT = ["gate.cli", "gate.config.load", "gate.config.policies", "gate.report.render", "gate.report.terminal",
         "gate.report.write", "gate.report.load", "gate.github.client", "gate.github.comment", "gate.github.event",
         "gate.github.actions", "gate.action.entry", "gate.action.artifact_comment", "gate.run.parent",
         "gate.run.trust", "gate.run.baseline", "gate.scan", "gate.verdict.registry"]


def test_light_modules_import_no_tensorflow_or_litert():
    code = ("import sys\n" + "".join(f"import {m}\n" for m in LIGHT) +
            "heavy = sorted(m for m in sys.modules if m.split('.')[0] in "
            f"{sorted(TF_FAMILY | {'ai_edge_litert', 'litert_quantizer'})!r})\nprint(heavy)\n")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                          cwd=GATE.parent)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.strip() == "[]", f"importing the light modules loaded {proc.stdout.strip()[:500]}"
