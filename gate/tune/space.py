"""What `gate tune` tries, cheapest first: the candidate policies of each family.

1. post-training: LiteRT Quantizer int4 recipes, int8, dynamic range, int16x8, float16
   (ordered by expected size: once one passes, the larger ones cannot win);
2. selective fallback: a post-training mode that failed accuracy (int4, int8) with its
   most harmful ops kept float (`convert.keep_float`);
3. QAT (whole model) -> int8;
4. pruning, clustering, structured pruning at decreasing strength (stronger still when the
   strongest passes), each with a per-layer
   table from the measured sensitivity (gate.optimize.sensitivity.allocate), built on the
   cheapest route to a quantized model that passed (int8 PTQ; int8 with preserving QAT when
   only QAT passed; else dynamic range or float16).

Each candidate carries an optimistic size factor (its gzip size relative to its route's
measured gzip size, used to skip what cannot beat the best passing size) and its
fine-tuning epochs (to estimate its cost before starting it). No TensorFlow here.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from math import log2

# The fine-tuning budgets of the shipped presets (policies/*.yml): what a user would run.
PRUNE_FT = {"epochs": 6, "max_steps": 3000, "learning_rate": 0.001}
CLUSTER_FT = {"epochs": 4, "max_steps": 2000, "learning_rate": 0.0002}
STRUCTURED_FT = {"epochs": 8, "max_steps": 4000, "learning_rate": 0.001}
QAT_FT = {"epochs": 3, "max_steps": 1500, "learning_rate": 0.0001}
PQAT_FT = {"epochs": 2, "max_steps": 1000, "learning_rate": 0.00005}
NOT_OUTPUT = {"exclude_roles": ["output"]}

PRUNE_STRENGTHS = (0.85, 0.75, 0.6, 0.45)       # overall final sparsity, strongest first
CLUSTER_STRENGTHS = (8, 16, 32)                # clusters per kernel, strongest first
STRUCTURED_STRENGTHS = (0.5, 0.35, 0.2)        # ratio of units removed, strongest first
# Tried only after a family's strongest setting passed, while each passes (escalation).
PRUNE_STRONGER = (0.9,)
STRUCTURED_STRONGER = (0.65,)
CLUSTER_STRONGER = ()                          # 8 is the smallest count the sensitivity measures


@dataclass(frozen=True)
class Candidate:
    name: str
    family: str                # ptq | fallback | qat | prune | cluster | structured
    policy: dict
    epochs: int = 0            # fine-tuning epochs (cost estimate)
    size_factor: float = 1.0   # optimistic gzip size relative to `route`'s measured gzip
    route: str | None = None   # the trial name whose size the factor applies to (None: the float reference)
    strength: float | None = None
    notes: tuple[str, ...] = field(default=())


def ptq(is_tflite: bool) -> list[Candidate]:
    """Post-training modes, smallest expected first. A committed .tflite goes through LiteRT
    Quantizer only (no float16 recipe there)."""
    recipes = [("int4-dynamic", "dynamic_wi4_afp32", 0.14), ("int4-weight-only", "weight_only_wi4_afp32", 0.14)]
    out = [Candidate(n, "ptq", {"convert": {"quantizer": "litert", "recipe": r}}, size_factor=f)
           for n, r, f in recipes]
    if is_tflite:
        out += [Candidate("int8", "ptq", {"convert": {"quantizer": "litert", "recipe": "static_wi8_ai8"}},
                          size_factor=0.25),
                Candidate("dynamic-range", "ptq", {"convert": {"quantizer": "litert",
                                                               "recipe": "dynamic_wi8_afp32"}}, size_factor=0.25),
                Candidate("int16x8", "ptq", {"convert": {"quantizer": "litert", "recipe": "static_wi8_ai16"}},
                          size_factor=0.25)]
        return out
    return out + [Candidate("int8", "ptq", {"convert": {"quantization": "int8"}}, size_factor=0.25),
                  Candidate("dynamic-range", "ptq", {"convert": {"quantization": "dynamic"}}, size_factor=0.25),
                  Candidate("int16x8", "ptq", {"convert": {"quantization": "int16x8"}}, size_factor=0.25),
                  Candidate("float16", "ptq", {"convert": {"quantization": "float16"}}, size_factor=0.5)]


FALLBACK_BASES = {"int4-dynamic": {"quantizer": "litert", "recipe": "dynamic_wi4_afp32"},
                  "int8": {"quantization": "int8"}}


def fallback(has_keep_float: bool, failed: set[str]) -> list[Candidate]:
    """For each post-training mode that failed accuracy (int4 dynamic, int8): the same mode
    with the N most harmful ops kept float (convert.keep_float: worst N, ranked by
    ablation), N = 1, 3, 8; for int8 also int16 activations for the worst 3. Only when the
    installed policy schema has keep_float."""
    if not has_keep_float:
        return []
    out = []
    for base, convert in FALLBACK_BASES.items():
        if base not in failed:
            continue
        out += [Candidate(f"{base}-keep-float-{n}", "fallback", {"convert": {**convert, "keep_float": {"worst": n}}},
                          size_factor=1.0, route=base) for n in (1, 3, 8)]
        if base == "int8":         # int16 activations for kept ops: a LiteRT Quantizer option
            out.append(Candidate("int8-int16-act-3", "fallback",
                                 {"convert": {"quantizer": "litert", "quantization": "int8",
                                              "keep_float": {"worst": 3, "activations": "int16"}}},
                                 size_factor=1.0, route=base))
    return out


def qat() -> list[Candidate]:
    return [Candidate("qat-int8", "qat", {"steps": [{"qat": {"finetune": dict(QAT_FT)}}],
                                          "convert": {"quantization": "int8"}}, epochs=QAT_FT["epochs"],
                      size_factor=1.0, route="int8")]


@dataclass(frozen=True)
class Route:
    """How a compressed model is converted: the cheapest passing quantization."""

    name: str                  # the trial it is measured by (size factors apply to its gzip)
    convert: dict
    preserve_qat: bool         # append a sparsity/cluster-preserving QAT step


def route_from(passed: set[str]) -> Route | None:
    """The conversion compression families build on, from the earlier trials that passed
    accuracy: int8 PTQ, else int8 after a preserving QAT (QAT passed), else dynamic range,
    else float16; None when none did (no family can pass then)."""
    if "int8" in passed:
        return Route("int8", {"quantization": "int8"}, False)
    if "qat-int8" in passed:
        return Route("int8", {"quantization": "int8"}, True)
    if "dynamic-range" in passed:
        return Route("dynamic-range", {"quantization": "dynamic"}, False)
    if "float16" in passed:
        return Route("float16", {"quantization": "float16"}, False)
    return None


def _table(tables: dict, strength: float) -> dict:
    table = tables.get(strength)
    return {"per_layer": table} if table else {}


def _with_route(steps: list[dict], route: Route, preserve: list[str]) -> tuple[dict, int]:
    epochs = sum(next(iter(s.values()))["finetune"]["epochs"] for s in steps)
    if route.preserve_qat:
        steps = steps + [{"qat": {"preserve": preserve, "finetune": dict(PQAT_FT)}}]
        epochs += PQAT_FT["epochs"]
    return {"steps": steps, "convert": dict(route.convert)}, epochs


def prune(route: Route, tables: dict[float, dict[str, float]], strengths=PRUNE_STRENGTHS) -> list[Candidate]:
    out = []
    for s in strengths:
        step = {"prune": {"schedule": "polynomial_decay", "initial_sparsity": round(min(0.25, s / 3), 3),
                          "final_sparsity": s, **_table(tables, s), "layers": dict(NOT_OUTPUT),
                          "finetune": dict(PRUNE_FT)}}
        policy, epochs = _with_route([step], route, ["sparsity"])
        # zeros of an int8 tensor gzip to almost nothing: at best (1 - s) of the route's bytes
        out.append(Candidate(f"prune-{int(round(100 * s))}", "prune", policy, epochs, max(0.05, 0.8 * (1 - s)),
                             route.name, s))
    return out


def cluster(route: Route, tables: dict[float, dict[str, int]], strengths=CLUSTER_STRENGTHS) -> list[Candidate]:
    out = []
    for k in strengths:
        step = {"cluster": {"clusters": k, "init": "kmeans++", **_table(tables, k),
                            "layers": dict(NOT_OUTPUT), "finetune": dict(CLUSTER_FT)}}
        policy, epochs = _with_route([step], route, ["clusters"])
        # log2(k) bits of 8 per weight, at best
        out.append(Candidate(f"cluster-{k}", "cluster", policy, epochs, 0.8 * log2(k) / 8, route.name, k))
    return out


def structured(route: Route, tables: dict[float, dict[str, float]], strengths=STRUCTURED_STRENGTHS
               ) -> list[Candidate]:
    out = []
    for r in strengths:
        step = {"structured_prune": {"ratio": r, "norm": "l1", **_table(tables, r),
                                     "layers": dict(NOT_OUTPUT), "finetune": dict(STRUCTURED_FT)}}
        policy, epochs = _with_route([step], route, [])
        if route.preserve_qat:       # plain QAT after a structured step: nothing to preserve
            policy["steps"][-1]["qat"].pop("preserve")
        # a conv's weights scale with its inputs and outputs: at best (1 - r)^2
        out.append(Candidate(f"structured-{int(round(100 * r))}", "structured", policy, epochs,
                             0.8 * (1 - r) ** 2, route.name, r))
    return out
