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
          "report", "github", "run", "tune", "fleet", "action", "cli", "__main__")

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


def imported_modules(tree: ast.Module, *, module_level_only: bool = False) -> set[str]:
    """The gate modules a file imports: `from pkg import sub` (a submodule) is pkg.sub, and
    `from pkg import name` (anything else) is pkg."""
    found: set[str] = set()

    def visit(node: ast.AST, top: bool) -> None:
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            return
        if isinstance(node, ast.Import) and (top or not module_level_only):
            found.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module and (top or not module_level_only):
            for alias in node.names:
                sub = f"{node.module}.{alias.name}"
                found.add(sub if sub in MODULES else node.module)
        for child in ast.iter_child_nodes(node):
            visit(child, top and not isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)))

    visit(tree, True)
    return found & set(MODULES)


def import_graph(*, module_level_only: bool = False) -> dict[str, set[str]]:
    """module -> the gate modules it imports (lazy imports inside functions included).
    Importing a submodule is no dependency on the package's __init__, which runs before
    any of its modules anyway."""
    return {m: imported_modules(t, module_level_only=module_level_only) - {m} for m, t in MODULES.items()}


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The import cycles of `graph`: its strongly connected components of more than one module."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        for nxt in sorted(graph[node]):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def test_no_import_cycle_lazy_imports_included():
    """No two modules import each other, directly or around a loop, counting the imports
    inside functions too: a lazy import hides a cycle from Python, not from the reader."""
    assert cycles(import_graph()) == []


def test_the_cycle_finder_finds_cycles():
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert cycles({"a": {"b"}, "b": set()}) == []


# gate/run/: the folders are the processes. What the parent may import of the worker: only
# its entry, from the one door (parent.isolate.run_in_process, --in-process debugging).
RUN_SHARED = {"gate.run", "gate.run.protocol", "gate.run.stagelog", "gate.run.calibration", "gate.run.digest",
              "gate.run.cachekey"}
PARENT_DOOR = {("gate.run.parent.isolate", "gate.run.worker.main")}


def run_side(module: str) -> str | None:
    if module.startswith("gate.run.parent"):
        return "parent"
    if module.startswith("gate.run.worker"):
        return "worker"
    return "shared" if module in RUN_SHARED else None


def test_run_is_split_by_process():
    """Every module of gate/run/ is the parent's, the worker's or shared; the worker never
    imports the parent; the shared modules import neither; the parent imports the worker only
    through its door."""
    graph = import_graph()
    run_modules = [m for m in MODULES if m.startswith("gate.run")]
    assert all(run_side(m) for m in run_modules), [m for m in run_modules if not run_side(m)]
    wrong = []
    for module in run_modules:
        for target in graph[module]:
            mine, theirs = run_side(module), run_side(target)
            if theirs is None or theirs == mine or theirs == "shared":
                continue
            if (module, target) not in PARENT_DOOR:
                wrong.append(f"{module} ({mine}) -> {target} ({theirs})")
    assert not wrong, wrong


def test_only_the_cli_and_the_action_start_a_run():
    """Outside gate/run/, the parent's entry points are called by the CLI and the action;
    nothing outside gate/run/ imports worker code."""
    graph = import_graph()
    worker_users = sorted(m for m, targets in graph.items() if not m.startswith("gate.run")
                          and any(run_side(t) == "worker" for t in targets))
    assert not worker_users, worker_users


def test_tfenv_is_where_tensorflow_itself_is_imported():
    """tfmot internals (registries) are imported in optimize/, TF itself only via tfenv."""
    direct = sorted(m for m, t in MODULES.items() if {"tensorflow", "tf_keras", "keras"} & {
        n.split(".")[0] for n in imports(t)} and m != "gate.measure.tfenv")
    assert not direct, f"TensorFlow/Keras imported outside gate.measure.tfenv: {direct}"


LIGHT = ["gate.cli", "gate.config.load", "gate.config.policies", "gate.report.render", "gate.report.terminal",
         "gate.report.write", "gate.report.load", "gate.github.client", "gate.github.comment", "gate.github.event",
         "gate.github.actions", "gate.action.entry", "gate.action.artifact_comment", "gate.run.parent.run",
         "gate.run.parent.trust", "gate.run.parent.baseline", "gate.scan", "gate.verdict.registry"]


def test_light_modules_import_no_tensorflow_or_litert():
    code = ("import sys\n" + "".join(f"import {m}\n" for m in LIGHT) +
            "heavy = sorted(m for m in sys.modules if m.split('.')[0] in "
            f"{sorted(TF_FAMILY | {'ai_edge_litert', 'litert_quantizer'})!r})\nprint(heavy)\n")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                          cwd=GATE.parent)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.strip() == "[]", f"importing the light modules loaded {proc.stdout.strip()[:500]}"


def test_model_formats_are_listed_in_one_table():
    """gate/formats.py is the one table of model formats: no other module spells the
    extensions out (messages use formats.EXPECTED or MODEL_FILE_FORMATS)."""
    spelled = sorted(str(path.relative_to(GATE.parent)) for path in GATE.rglob("*.py")
                     if path.name != "formats.py" or path.parent != GATE
                     for text in [path.read_text(encoding="utf-8")]
                     if '".hdf5"' in text or ".keras, .h5" in text or '".h5"' in text)
    assert not spelled, spelled
