"""Who made an artifact and where: tool versions, machine, time. No TF import."""
from __future__ import annotations

import os
import platform
from datetime import datetime, timezone
from importlib.metadata import PackageNotFoundError, version

DISTS = ("model-gate", "tensorflow", "tf-keras", "tensorflow-model-optimization", "ai-edge-litert", "numpy")


def versions(extra: tuple[str, ...] = ()) -> dict[str, str]:
    """Python's and each distribution's version (DISTS, then `extra`)."""
    out = {"python": platform.python_version()}
    for dist in (*DISTS, *extra):
        try:
            out[dist] = version(dist)
        except PackageNotFoundError:
            out[dist] = "not installed"
    return out


def environment() -> dict[str, str | int | None]:
    from gate.measure.bench import cpu_name

    return {"platform": platform.platform(), "machine": platform.machine(), "cpu": cpu_name(),
            "cpu_count": os.cpu_count(), "ci": os.environ.get("CI")}


def now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")
