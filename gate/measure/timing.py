"""How long an interpreter takes to be warm again after another one ran.

Every latency figure of the gate comes from interleaving: two models (the benchmark), or
several interpreter instances of each (the A/B test), visited in turn so that a noisy
machine's drift lands on all of them. A visit's first invokes pay for what the previous
visit evicted: on a float EfficientNetB0 (16 MB of weights) the first invoke after
another instance ran took 2.5 ms, the sixth 1.0 ms, an instance run on its own 0.83 ms;
fastest-of-3 visits over 5 instances read 1.86 ms, so a float-vs-int8 A/B ratio came out
0.30 where a single instance per model gives 0.47-0.53 (MobileNetV3Small: 0.65-0.76 vs
0.82-0.91). Users run one model over and over: the gate measures warm invokes, and
`settle_invokes` says how many invokes each visit discards first.
"""
from __future__ import annotations

import math
import time
from typing import Callable, Sequence

import numpy as np

Invoke = Callable[[], object]
PROBE_BURST = 20         # invokes per probe visit: cold starts up to 15 invokes are seen
PROBE_VISITS = 2         # probe visits of every interpreter
SETTLED_WITHIN = 1.05         # settled: within 5 % of the visit's tail
MAX_SETTLE = 12


def settle_invokes(models: Sequence[Sequence[Invoke]], timer: Callable[[], int] = time.perf_counter_ns, *,
                   burst: int = PROBE_BURST, visits: int = PROBE_VISITS, deadline_ns: float = math.inf) -> int:
    """Visit every interpreter of `models` (one list of instances per model) round-robin,
    as a run does, `burst` invokes each. Per model and position in a visit, the median
    time; a model is settled at the first position that, with its window of three, is
    within SETTLED_WITHIN (or three noise spreads) of the median of the visit's last quarter. Returns the largest of the models' positions (0: the first invoke
    after a switch is already warm), at most MAX_SETTLE."""
    order = [(m, invoke) for m, group in enumerate(models) for invoke in group]
    if len(order) < 2:
        return 0
    profiles: list[list[list[int]]] = [[] for _ in models]
    for _ in range(visits):
        for m, invoke in order:
            times = []
            for _ in range(burst):
                if timer() > deadline_ns:
                    break
                t0 = timer()
                invoke()
                times.append(timer() - t0)
            if len(times) < burst:      # the deadline (a caller's time budget) came: stop probing
                break
            profiles[m].append(times)
    if not all(profiles):               # cut short before every model was probed: assume cold starts
        return MAX_SETTLE
    worst = 0
    for visits_of_model in profiles:
        by_position = np.median(np.asarray(visits_of_model, dtype=np.float64), axis=0)
        late = by_position[-max(3, burst // 4):]   # settled by then (or never): the visit's tail
        tail = float(np.median(late))
        # How much a position's median moves by noise alone, from the tail's positions.
        limit = max(SETTLED_WITHIN * tail, tail + 3 * 1.4826 * float(np.median(np.abs(late - tail))))
        # Settled where the position and its window of three are: one noisy position alone
        # neither ends nor extends the cold start.
        settled = [p for p in range(burst - 2)
                   if by_position[p] <= limit and np.median(by_position[p:p + 3]) <= limit]
        worst = max(worst, settled[0] if settled else burst)
    return min(worst, MAX_SETTLE)
