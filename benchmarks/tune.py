"""`gate tune` against the best hand-picked preset, per zoo architecture.

    python benchmarks/tune.py --cache ~/.cache/gate-zoo [--models plain_cnn,mobilenet_v2]
                              [--budget-minutes 25] [--max-drop 0.01] [--quick] [--write]

For each model of benchmarks/zoo.py (built and trained there, cached under --cache):
1. every preset of zoo.PRESETS through `gate check --no-baseline` with
   `thresholds: {accuracy: {max_drop: MAX_DROP}}` (--quick: the presets' steps with the
   zoo's short fine-tuning budgets, as the published zoo table) -- the best passing one is
   the one with the largest gzip ratio vs the float32 .tflite;
2. `gate tune --budget-minutes B` with the same gate.yml (policy: int8, the default a new
   user starts from), its output in CACHE/tune/MODEL/ (a tune.json already there is
   reused unless --force);
3. prints per model: the best passing preset vs tune -- gzip ratio, accuracy drop, latency
   ratio vs float32, minutes -- and with --write puts the table into benchmarks/README.md
   (between the tune-table markers).
Results are appended to CACHE/tune-presets.jsonl as each preset run finishes.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent))
import zoo  # noqa: E402

ROOT = zoo.ROOT


def gate_yml(model_dir: Path, policy, max_drop: float) -> dict:
    return {"model": str(model_dir / "model.keras"),
            "data": {"train": str(model_dir / "train.npz"), "eval": str(model_dir / "eval.npz")},
            "policy": policy, "thresholds": {"accuracy": {"max_drop": max_drop}},
            "benchmark": {"threads": 1, "warmup": 5, "runs": 50}}


def run_preset(model_dir: Path, preset: str, out: Path, max_drop: float, quick: bool) -> dict:
    out.mkdir(parents=True, exist_ok=True)
    (out / "gate.yml").write_text(yaml.safe_dump(gate_yml(model_dir, zoo.policy_for(preset, quick), max_drop),
                                                 sort_keys=False))
    start = time.time()
    proc = subprocess.run([sys.executable, "-m", "gate", "check", "--config", str(out / "gate.yml"), "--out",
                           str(out / "report"), "--no-baseline", "--no-cache"], cwd=out, capture_output=True,
                          text=True, env={**os.environ, "PYTHONPATH": str(ROOT)})
    report = json.loads((out / "report" / "report.json").read_text())
    return zoo.summarize(report, proc.returncode, time.time() - start)


def run_tune(model_dir: Path, out: Path, budget: float, max_drop: float, force: bool) -> dict:
    if force or not (out / "tune.json").exists():
        out.mkdir(parents=True, exist_ok=True)
        (out / "gate.yml").write_text(yaml.safe_dump(gate_yml(model_dir, "int8", max_drop), sort_keys=False))
        subprocess.run([sys.executable, "-m", "gate", "tune", "--config", str(out / "gate.yml"), "--out", str(out),
                        "--budget-minutes", str(budget), "--cache-dir", str(out.parent / "cache")], cwd=out,
                       env={**os.environ, "PYTHONPATH": str(ROOT)})
    data = json.loads((out / "tune.json").read_text())
    row = {"minutes": data["elapsed_minutes"], "budget": data["budget_minutes"], "trials": len(data["trials"]),
           "winner": data["winner"], "closest": data["closest"]}
    name = data["winner"] or data["closest"]
    t = next((t for t in data["trials"] if t["name"] == name), None)
    if t is not None:
        row.update(passed=t["status"] == "pass", gzip_ratio=t["compression"],
                   drop_pts=round(100 * t["accuracy_drop"], 2), latency_ratio=t["latency_ratio"])
    return row


def best_preset(rows: dict[str, dict]) -> tuple[str | None, dict | None]:
    ok = {p: r for p, r in rows.items() if r["exit"] == 0}
    if not ok:
        return None, None
    p = max(ok, key=lambda p: ok[p]["gzip_ratio"])
    return p, ok[p]


def table(results: dict, tunes: dict, models: list[str], max_drop: float) -> str:
    lines = [f"| model (accuracy.max_drop {max_drop}) | best passing preset | gzip | drop | latency | min "
             "| `gate tune` winner | gzip | drop | latency | min (budget) | trials |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for m in models:
        p, r = best_preset(results.get(m, {}))
        t = tunes.get(m)
        left = (f"`{p}` | {r['gzip_ratio']:.2f}x | {r['drop_pts']:+.2f} pts | {r['latency_ratio']:.2f}x | "
                f"{r['seconds'] / 60:.1f}" if p else "none passed | – | – | – | –")
        if t is None:
            right = "not run | – | – | – | – | –"
        else:
            label = f"`{t['winner']}`" if t["winner"] else f"none (closest `{t['closest']}`)"
            right = (f"{label} | {t.get('gzip_ratio') or 0:.2f}x | {t.get('drop_pts', 0):+.2f} pts | "
                     f"{t.get('latency_ratio') or 0:.2f}x | {t['minutes']:.1f} ({t['budget']:g}) | {t['trials']}")
        lines.append(f"| {zoo.LABELS.get(m, m)} | {left} | {right} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--cache", required=True, type=Path)
    ap.add_argument("--models", default="plain_cnn,mobilenet_v2")
    ap.add_argument("--presets", default=",".join(zoo.PRESETS))
    ap.add_argument("--budget-minutes", type=float, default=25)
    ap.add_argument("--max-drop", type=float, default=0.01)
    ap.add_argument("--quick", action="store_true", help="presets with the zoo's short fine-tuning budgets")
    ap.add_argument("--skip-presets", action="store_true", help="only what the results file already has")
    ap.add_argument("--force", action="store_true")
    ap.add_argument("--write", action="store_true")
    args = ap.parse_args(argv)
    cache = args.cache.expanduser().resolve()
    models = args.models.split(",")
    path = cache / "tune-presets.jsonl"
    results: dict[str, dict] = {}
    if path.exists():
        for line in path.read_text().splitlines():
            r = json.loads(line)
            results.setdefault(r["model"], {})[r["preset"]] = r
    tunes = {}
    for m in models:
        model_dir = zoo.build(m, cache)
        for p in [] if args.skip_presets else args.presets.split(","):
            if p in results.get(m, {}) and not args.force:
                continue
            row = run_preset(model_dir, p, cache / "tune-presets" / m / p, args.max_drop, args.quick)
            row.update(model=m, preset=p)
            results.setdefault(m, {})[p] = row
            with path.open("a") as f:
                f.write(json.dumps(row) + "\n")
            print(f"{m:16s} {p:16s} {zoo.cell(row)}", flush=True)
        tunes[m] = run_tune(model_dir, cache / "tune" / m, args.budget_minutes, args.max_drop, args.force)
        print(f"{m:16s} tune             {tunes[m]}", flush=True)
    text = table(results, tunes, models, args.max_drop)
    print("\n" + text)
    if args.write:
        zoo.replace_between(ROOT / "benchmarks" / "README.md", "tune-table", text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
