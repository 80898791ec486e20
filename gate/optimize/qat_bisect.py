"""When tfmot's own layout transform fails on a valid model, find the layers that break it.

tfmot's ModelTransformer rewires the layers a pattern matched (Conv+BN folding, the
Concatenate transforms, ...) assuming each connection reads tensor 0 of node 0 of the
layer it names: a Concatenate fed by the outputs of a multi-output layer (`tf.split`), for
one, is reconnected to the wrong tensor, and the rebuilt model fails ("Inputs have
incompatible shapes", "expected ndim=4, found ndim=5"). `quantize_model` fails the same
way. A transform matches only the layers that are to be quantized (its candidate
layers), so leaving the right layers unannotated -- float, calibrated by the converter --
lets it through.

`transform_leaving_float` finds them by bisection on the layer order: the fewest leading
layers whose exclusion lets the transform pass ends with a culprit; it is kept float and
the search repeats until the transform passes (each round log2(n) transforms).
"""
from __future__ import annotations

from collections.abc import Callable
from typing import Any

from gate.errors import OptimizationError

MAX_CULPRITS = 8
NOTHING = object()      # every layer left float: nothing to transform
TRANSFORM_ERRORS = (ValueError, RuntimeError, TypeError, KeyError, IndexError)


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0][:200] if text else ''}"


def transform_leaving_float(apply: Callable[[dict], Any], lqm: dict, order: list[str],
                            classes: dict[str, str]) -> tuple[Any, list[tuple[str, str, str]]]:
    """(apply's result, [(layer, class, reason) left float]). `apply(lqm)` runs the layout
    transform on the layers in `lqm`; `order` are the annotated layers in model order.
    Raises OptimizationError (exit 1) naming the layers when no set of float layers lets it pass."""
    try:
        return apply(lqm), []
    except TRANSFORM_ERRORS as exc:
        error = _first_line(exc)

    inputs = {n for n in lqm if n not in order or classes.get(n) == "InputLayer"}

    def passes(excluded: set[str]) -> Any:
        kept = {n: v for n, v in lqm.items() if n not in excluded}
        if not set(kept) - inputs:
            return NOTHING      # nothing left to quantize (an empty candidate set would mean "every layer")
        try:
            return apply(kept)
        except TRANSFORM_ERRORS:
            return None

    culprits: list[str] = []
    remaining = [n for n in order if n in lqm and n not in inputs]
    result = None
    while len(culprits) < MAX_CULPRITS:
        result = passes(set(culprits))
        if result is not None:
            break
        lo, hi = 1, len(remaining)          # passes(culprits + remaining[:hi]) holds (NOTHING counts)
        while lo < hi:
            mid = (lo + hi) // 2
            if passes(set(culprits) | set(remaining[:mid])) is not None:
                hi = mid
            else:
                lo = mid + 1
        culprits.append(remaining.pop(hi - 1))
    if result is None or result is NOTHING:
        named = ", ".join(f"'{c}' ({classes.get(c, '?')})" for c in culprits)
        raise OptimizationError(f"qat: tfmot's layout transform fails on the model ({error}); leaving {named} float "
                          "did not let it through", field="steps.qat",
                          hint="use a post-training policy (int8, dynamic-range, int16x8), or prune/cluster "
                               "followed by int8 instead of qat")
    reason = f"tfmot's layout transform fails with it quantized: {error} (left float, the rest is quantized)"
    return result, [(c, classes.get(c, "?"), reason) for c in culprits]
