"""Many models: one job that gates them all vs one matrix leg per model, then the merge.

    python benchmarks/fleet.py [--policy dynamic-range] [--runs 10] [--examples 100]

Builds a repository in a temp dir from the examples' files — a tf_keras CNN
(examples/digits), a Keras 3 CNN (examples/keras3-cnn) and a committed .tflite
(examples/tflite) — under one gate.yml with `models:`, then times, with the `gate` of
this interpreter's environment and no cache: `gate models --json` (the plan),
`gate check` of all three (one job), `gate check --model NAME` per model (the legs, each
a fresh process as on its own runner) and `gate report merge` of the legs. The matrix's
wall time is about plan + the slowest leg + merge (plus each job's start on GitHub,
which is not measured here). Prints a Markdown table.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
MODELS = {"cnn": ("digits", "model.keras"), "k3": ("keras3-cnn", "model.keras"), "tfl": ("tflite", "model.tflite")}
GATE = str(Path(sys.executable).with_name("gate"))


def make_repo(root: Path, policy: str, runs: int, examples: int) -> None:
    lines = [f"benchmark: {{threads: 1, warmup: 2, runs: {runs}}}", f"evaluate: {{max_examples: {examples}}}",
             f"policy: {policy}", "thresholds:", "  accuracy: {max_drop: 0.05}", "models:"]
    for name, (example, model) in MODELS.items():
        (root / name).mkdir(parents=True)
        shutil.copy(EXAMPLES / example / model, root / name / model)
        shutil.copy(EXAMPLES / example / "eval.npz", root / name / "eval.npz")
        lines.append(f"  {name}: {{model: {name}/{model}, data: {{eval: {name}/eval.npz}}}}")
    (root / "gate.yml").write_text("\n".join(lines) + "\n")


def timed(*args: str, cwd: Path) -> tuple[float, int]:
    start = time.perf_counter()
    code = subprocess.run([GATE, *args], cwd=cwd, capture_output=True).returncode
    return time.perf_counter() - start, code


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--policy", default="dynamic-range")
    ap.add_argument("--runs", type=int, default=10)
    ap.add_argument("--examples", type=int, default=100)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="gate-fleet-") as tmp:
        root = Path(tmp)
        make_repo(root, args.policy, args.runs, args.examples)
        rows = [("`gate models --json` (plan)", *timed("models", "--json", cwd=root))]
        rows.append(("`gate check`, all three in one job", *timed("check", "-q", "--no-cache", "--no-baseline",
                                                                 "--out", "one", cwd=root)))
        legs = []
        for name in MODELS:
            seconds, code = timed("check", "-q", "--no-cache", "--no-baseline", "--model", name,
                                  "--out", f"legs/{name}", cwd=root)
            legs.append(seconds)
            rows.append((f"leg `{name}` (`gate check --model {name}`)", seconds, code))
        rows.append(("`gate report merge` of the legs", *timed("report", "merge", *(f"legs/{n}" for n in MODELS),
                                                              "--expect", json.dumps(list(MODELS)), "--out", "merged",
                                                              cwd=root)))
        same = json.loads((root / "one" / "report.json").read_text())["status"] == \
            json.loads((root / "merged" / "report.json").read_text())["status"]
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(f"policy {args.policy}, {args.examples} eval examples, {args.runs} timed runs; "
          f"{os.cpu_count()} CPUs, load average {load:.1f}\n")
    print("| step | seconds | exit |\n|---|---|---|")
    for label, seconds, code in rows:
        print(f"| {label} | {seconds:.1f} | {code} |")
    matrix = rows[0][1] + max(legs) + rows[-1][1]
    print(f"\none job: {rows[1][1]:.1f} s; matrix (plan + slowest leg + merge): {matrix:.1f} s; "
          f"same verdict: {same}")


if __name__ == "__main__":
    main()
