"""Every preset on the digits example, side by side: gzip bytes, ratio vs float TFLite,
accuracy, drop, parameters, latency vs float (interleaved, one process), stage times.

    python benchmarks/compression.py [--presets max-compression,int8,benchmarks/seed-recipe.yml] [--runs 300]

Each preset runs through the same pipeline as `gate check` (gate.run.worker.check.check) with a
temporary gate.yml, so the figures are what the gate reports.
"""
from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from gate.config.load import load_config  # noqa: E402
from gate.config.policies import preset_names  # noqa: E402
from gate.run.protocol import Job  # noqa: E402
from gate.run.stagelog import StageLog  # noqa: E402
from gate.run.worker.check import check  # noqa: E402

SKIP = {"latency-xnnpack"}  # needs a MobileNet-like model; the digits CNN is refused by design


def run_preset(name: str, runs: int) -> dict:
    digits = ROOT / "examples" / "digits"
    with tempfile.TemporaryDirectory() as tmp:
        cfg_path = Path(tmp) / "gate.yml"
        cfg_path.write_text(yaml.safe_dump({
            "model": str(digits / "model.keras"),
            "data": {"train": str(digits / "train.npz"), "eval": str(digits / "eval.npz")},
            "policy": name, "benchmark": {"threads": 1, "warmup": 50, "runs": runs}}))
        log = StageLog(lambda _: None)
        cfg = load_config(cfg_path)
        check(cfg, log, Job(kind="check", config=cfg, trust_model_code=False))
        return {**log.record.model_dump(mode="json"), "candidate_bytes": log.artifacts["candidate.tflite"]}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--presets", default=",".join(n for n in preset_names() if n not in SKIP))
    ap.add_argument("--runs", type=int, default=300)
    args = ap.parse_args()
    print("| preset | gzip bytes | ratio gzip | raw bytes | accuracy | drop (pts) | params | p50 vs float "
          "| stage seconds |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---|")
    candidates = {}
    for name in args.presets.split(","):
        if name.endswith(".yml"):
            name = str((Path.cwd() / name).resolve())
        p = run_preset(name, args.runs)
        ref, cand = p["reference"], p["candidate"]
        orig = p["original"]["accuracy"]["top1"]
        acc = cand["evaluation"]["accuracy"]["top1"]
        stages = p.get("stages") or []
        params = next((s["params"] for s in reversed(stages) if s.get("params")), p["model"]["params"])
        times = ", ".join(f"{s['name']} {s['seconds']:.1f}" for s in stages[1:]) or "–"
        ratio = cand["latency"]["p50_ms"] / ref["latency"]["p50_ms"]
        print(f"| {Path(name).stem if name.endswith('.yml') else name} | {cand['bytes_gzip']:,} | {ref['bytes_gzip'] / cand['bytes_gzip']:.2f}x "
              f"| {cand['bytes_raw']:,} | {100 * acc:.2f} % | {100 * (orig - acc):+.2f} | {params:,} "
              f"| {ratio:.2f}x | {times} |", flush=True)
        candidates[Path(name).stem if name.endswith(".yml") else name] = p["candidate_bytes"]
    side_by_side(candidates, args.runs)


def side_by_side(candidates: dict[str, bytes], runs: int) -> None:
    """All candidates timed interleaved in one process: latency comparable across presets."""
    import numpy as np

    from gate.config.schema import BenchmarkSpec
    from gate.measure.bench import benchmark

    example = np.load(ROOT / "examples" / "digits" / "eval.npz")["x"][:1]
    result = benchmark(candidates, example, BenchmarkSpec(threads=1, warmup=50, runs=max(runs, 1000)))
    base = result.stats.get("int8")
    print(f"\nCandidates interleaved in one process ({result.settings['runs']} rounds, 1 thread):")
    print("| preset | p50 µs | p99 µs | p50 vs int8 |")
    print("|---|---:|---:|---:|")
    for name, st in sorted(result.stats.items(), key=lambda kv: kv[1].p50_ms):
        rel = f"{st.p50_ms / base.p50_ms:.2f}x" if base else "–"
        print(f"| {name} | {1000 * st.p50_ms:.2f} | {1000 * st.p99_ms:.2f} | {rel} |")


if __name__ == "__main__":
    main()
