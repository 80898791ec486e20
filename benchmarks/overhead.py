"""What the gate costs over doing the same work by hand, and what a re-run costs.

    python benchmarks/overhead.py [--repeats 3] [--zoo DIR]

Side by side on this machine, in one run, order alternating each repeat (the machine is
noisy; ratios of paired runs are what is reported):

- **script**: benchmarks/handwritten_seed.py — the seed article's collaborative recipe
  (prune 0.2 -> 0.8 for 5 epochs, 16 clusters for 3, CQAT for 2 at 1e-5, dynamic range)
  on the digits example with tfmot and the LiteRT interpreter, nothing else;
- **gate cold**: `gate check --no-baseline` with the same policy and an empty cache;
- **gate warm**: the same command again with that cache (nothing changed).

Prints the medians and the ratios gate cold / script and gate warm / gate cold, then the
gate's per-stage split (report.json `timings_s`) on one real architecture when --zoo names
a directory with model.keras, train.npz and eval.npz (benchmarks/zoo.py builds them).
"""
from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
DIGITS = ROOT / "examples" / "digits"
GATE = [sys.executable, "-m", "gate"]
SEED_POLICY = {
    "steps": [
        {"prune": {"schedule": "polynomial_decay", "initial_sparsity": 0.2, "final_sparsity": 0.8,
                   "frequency": 10, "finetune": {"epochs": 5}}},
        {"cluster": {"clusters": 16, "init": "kmeans++", "preserve_sparsity": True, "finetune": {"epochs": 3}}},
        {"qat": {"preserve": ["sparsity", "clusters"], "finetune": {"epochs": 2, "learning_rate": 1.0e-5}}},
    ],
    "convert": {"quantization": "dynamic"},
}
THRESHOLDS = {"size_kb": {"max": 100}, "compression": {"min": 3.0}, "accuracy": {"min": 0.9, "max_drop": 0.02}}


def timed(cmd: list[str]) -> float:
    start = time.perf_counter()
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True)
    seconds = time.perf_counter() - start
    if proc.returncode not in (0, 1):
        sys.exit(f"{' '.join(cmd)} exited {proc.returncode}:\n{proc.stderr[-3000:]}")
    return seconds


def write_config(directory: Path, model_dir: Path, policy, thresholds: dict) -> Path:
    cfg = directory / "gate.yml"
    cfg.write_text(yaml.safe_dump({
        "model": str(model_dir / "model.keras"),
        "data": {"train": str(model_dir / "train.npz"), "eval": str(model_dir / "eval.npz")},
        "policy": policy, "thresholds": thresholds, "benchmark": {"threads": 1, "warmup": 20, "runs": 200}}))
    return cfg


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--zoo", type=Path, help="a zoo model directory for the per-stage split (int8 preset)")
    args = ap.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        cfg = write_config(Path(tmp), DIGITS, SEED_POLICY, THRESHOLDS)
        for i in range(args.repeats):
            cache = Path(tmp) / f"cache-{i}"
            gate = [*GATE, "check", "-c", str(cfg), "-o", str(Path(tmp) / "out"), "--no-baseline", "-q",
                    "--cache-dir", str(cache)]
            script = [sys.executable, str(ROOT / "benchmarks" / "handwritten_seed.py")]
            if i % 2 == 0:
                s, cold = timed(script), timed(gate)
            else:
                cold, s = timed(gate), timed(script)
            warm = timed(gate)
            rows.append((s, cold, warm))
            print(f"repeat {i + 1}: script {s:.1f} s, gate cold {cold:.1f} s, gate warm {warm:.1f} s "
                  f"(cold/script {cold / s:.3f}, warm/cold {warm / cold:.3f})", flush=True)
        report = json.loads((Path(tmp) / "out" / "report.json").read_text())
    s, cold, warm = (statistics.median(col) for col in zip(*rows))
    print(f"\nmedian of {args.repeats}: script {s:.1f} s, gate cold {cold:.1f} s, gate warm {warm:.1f} s")
    print(f"gate cold / script = {statistics.median(c / x for x, c, _ in rows):.3f} (target <= 1.10)")
    print(f"gate warm / gate cold = {statistics.median(w / c for _, c, w in rows):.3f} (target <= 0.15)")
    print("warm run stages (s):", json.dumps(report["timings_s"]))
    if args.zoo:
        with tempfile.TemporaryDirectory() as tmp:
            cfg = write_config(Path(tmp), args.zoo, "int8", {"accuracy": {"max_drop": 0.02},
                                                           "latency": {"max_ratio": 1.5}})
            seconds = timed([*GATE, "check", "-c", str(cfg), "-o", str(Path(tmp) / "out"), "--no-baseline", "-q",
                             "--no-cache"])
            report = json.loads((Path(tmp) / "out" / "report.json").read_text())
        print(f"\nper-stage split, {args.zoo.name} int8, {seconds:.1f} s wall:")
        for stage, value in sorted(report["timings_s"].items(), key=lambda kv: -kv[1]):
            print(f"  {stage:<22} {value:8.2f} s  {100 * value / seconds:5.1f} %")


if __name__ == "__main__":
    main()
