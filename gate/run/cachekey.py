"""The cache's key: the sha256 of the canonical JSON of what decides a result. Shared by
the worker's cache (gate.run.worker.cache) and the parent-side readers of a model's inputs
(gate.fleet.changed), so it imports neither side. FORMAT is bumped when the cached
record's shape changes: old entries become misses."""
from __future__ import annotations

import hashlib
import json

FORMAT = 2


def cache_key(parts: dict) -> str:
    """The key of an entry: sha256 of the canonical JSON of what decides it."""
    return hashlib.sha256(json.dumps({"format": FORMAT, **parts}, sort_keys=True, default=str).encode()).hexdigest()
