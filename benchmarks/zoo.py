"""Every preset on real architectures, through the real `gate check`.

    python benchmarks/zoo.py --cache ~/.cache/gate-zoo [--quick] [--models a,b] [--presets p,q] [--write]

1. Builds the zoo deterministically, with no download (cached under --cache):
   tf_keras.applications with weights=None -- MobileNetV1 0.25, MobileNetV2 0.35,
   MobileNetV3Small, EfficientNetB0, ResNet50, DenseNet121 -- a transfer-learning nest (the
   tf.org pattern: a MobileNetV2 base called as base(x, training=False) under a new head)
   and a Conv->BN->ReLU CNN with default layer names, each trained briefly on sklearn's
   digits upsampled to 32x32x3 (800 train / 400 eval). keras.applications' BN momentum
   0.999 leaves the moving statistics at their init after a short fit (eval accuracy
   ~10 %), so every BN trains at 0.9 (saved so).
2. Runs each preset on each model as a new user would: `gate check --no-baseline` in a
   subprocess, with a gate.yml that names the preset and `accuracy: {max_drop: 0.02}`.
   --quick extends each preset with short fine-tuning (by position: the preset's steps
   with fewer epochs), which is what the published table used on a 2-core machine.
3. Prints the table (exit code, accuracy drop vs the Keras model, gzip ratio vs the float32
   .tflite, latency ratio vs float32 in the same run, wall seconds) and with --write puts
   it into benchmarks/README.md and the "which preset on which architecture" table of
   docs/policies.md. Results are appended to CACHE/results[-quick].jsonl as each run
   finishes; a rerun skips what is there (--force reruns). While a file CACHE/PAUSE exists,
   no new run starts (the seconds column stays honest on a shared machine).
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import yaml

ROOT = Path(__file__).resolve().parent.parent
N_TRAIN, N_EVAL, SEED = 800, 400, 0
PRESETS = ["int8", "qat-int8", "prune-int8", "cluster-int8", "max-compression", "structured-int8",
           "latency-xnnpack"]
# --quick: the preset's steps, merged by position, with these budgets (gate.config.policies).
QUICK = {"prune": {"finetune": {"epochs": 3}}, "cluster": {"finetune": {"epochs": 1}},
         "qat": {"finetune": {"epochs": 1}}, "structured_prune": {"finetune": {"epochs": 3}}}
LABELS = {"plain_cnn": "Conv-BN CNN (default names)", "mobilenet_v1": "MobileNetV1 0.25",
          "mobilenet_v2": "MobileNetV2 0.35", "mnv2_nested_fn": "MobileNetV2 in a transfer model",
          "mobilenet_v3_small": "MobileNetV3Small", "efficientnet_b0": "EfficientNetB0",
          "densenet121": "DenseNet121", "resnet50": "ResNet50"}


# --------------------------------------------------------------------------- the zoo

def _keras():
    sys.path.insert(0, str(ROOT))
    from gate.measure.tfenv import keras, tf

    return keras(), tf()


def digits(size: int = 32, scale: str = "unit") -> tuple[dict, dict]:
    """Digits 8x8 -> size x size x 3 (bilinear), seeded split. scale: unit [0, 1], sym [-1, 1],
    byte [0, 255] (models with a built-in Rescaling)."""
    from sklearn.datasets import load_digits

    _, tf = _keras()
    d = load_digits()
    x = tf.image.resize((d.images.astype(np.float32) / 16.0)[..., None], (size, size), method="bilinear").numpy()
    x = np.repeat(np.clip(x, 0.0, 1.0), 3, axis=-1).astype(np.float32)
    x = {"unit": x, "sym": x * 2.0 - 1.0, "byte": x * 255.0}[scale]
    y = d.target.astype(np.int64)
    order = np.random.RandomState(SEED).permutation(len(y))
    tr, ev = order[:N_TRAIN], order[N_TRAIN:N_TRAIN + N_EVAL]
    return {"x": x[tr], "y": y[tr]}, {"x": x[ev], "y": y[ev]}


def bn_momentum(model, momentum: float = 0.9) -> int:
    k, _ = _keras()
    n = 0
    for layer in model.layers:
        if isinstance(layer, k.Model):
            n += bn_momentum(layer, momentum)
        elif isinstance(layer, k.layers.BatchNormalization):
            layer.momentum = momentum
            n += 1
    return n


def _app(name: str, size: int, **kw):
    k, _ = _keras()
    return getattr(k.applications, name)(weights=None, input_shape=(size, size, 3), classes=10, **kw)


def plain_cnn(size):
    """Conv -> BatchNorm -> ReLU blocks, default layer names and Conv2D arguments."""
    k, _ = _keras()
    L = k.layers
    return k.Sequential([
        k.Input((size, size, 3)),
        L.Conv2D(16, 3, padding="same"), L.BatchNormalization(), L.ReLU(), L.MaxPooling2D(),
        L.Conv2D(32, 3, padding="same"), L.BatchNormalization(), L.ReLU(), L.MaxPooling2D(),
        L.Conv2D(64, 3, padding="same"), L.BatchNormalization(), L.ReLU(),
        L.GlobalAveragePooling2D(), L.Dense(64, activation="relu"), L.Dense(10, activation="softmax"),
    ]), "unit"


def mnv2_nested_fn(size):
    """The tf.org transfer-learning pattern: a base "pre-trained" on the digits (8 epochs, BN
    training), then frozen and called as base(x, training=False) under GAP + Dropout + Dense
    while the head trains, then set trainable again (the state after the tutorial's
    fine-tuning phase)."""
    k, _ = _keras()
    base = k.applications.MobileNetV2(alpha=0.35, weights=None, include_top=False, input_shape=(size, size, 3))
    bn_momentum(base)
    pre = k.Sequential([k.Input((size, size, 3)), base, k.layers.GlobalAveragePooling2D(),
                        k.layers.Dense(10, activation="softmax")])
    train, _ = digits(size, "sym")
    pre.compile(optimizer=k.optimizers.Adam(2e-3), loss="sparse_categorical_crossentropy")
    pre.fit(train["x"], train["y"], epochs=8, batch_size=32, shuffle=True, verbose=0)
    base.trainable = False
    inp = k.Input((size, size, 3))
    x = k.layers.GlobalAveragePooling2D()(base(inp, training=False))
    out = k.layers.Dense(10, activation="softmax")(k.layers.Dropout(0.2)(x))
    model = k.Model(inp, out, name="nested_fn")
    model._zoo_after_fit = lambda: setattr(base, "trainable", True)
    return model, "sym"


# name -> (builder, input size, epochs, learning rate)
ZOO = {
    "plain_cnn": (plain_cnn, 32, 8, 1e-3),
    "mobilenet_v1": (lambda s: (_app("MobileNet", s, alpha=0.25), "sym"), 32, 10, 2e-3),
    "mobilenet_v2": (lambda s: (_app("MobileNetV2", s, alpha=0.35), "sym"), 32, 10, 2e-3),
    "mnv2_nested_fn": (mnv2_nested_fn, 32, 4, 2e-3),
    "mobilenet_v3_small": (lambda s: (_app("MobileNetV3Small", s, minimalistic=False), "byte"), 32, 12, 2e-3),
    "efficientnet_b0": (lambda s: (_app("EfficientNetB0", s), "byte"), 32, 10, 1e-3),
    "densenet121": (lambda s: (_app("DenseNet121", s), "unit"), 32, 6, 1e-3),
    "resnet50": (lambda s: (_app("ResNet50", s), "unit"), 32, 6, 1e-3),
}


# Architectures the gate was not developed on ("as a new user would"): `--models` runs them too.
UNSEEN = {
    "regnetx002": (lambda s: (_app("RegNetX002", s), "byte"), 32, 8, 2e-3),          # grouped convs
    "efficientnet_v2_b0": (lambda s: (_app("EfficientNetV2B0", s), "byte"), 32, 8, 1e-3),   # fused MBConv
    "nasnet_mobile": (lambda s: (_app("NASNetMobile", s), "unit"), 32, 8, 1e-3),      # separable convs, crops
}
LABELS.update(regnetx002="RegNetX002 (unseen)", efficientnet_v2_b0="EfficientNetV2B0 (unseen)",
              nasnet_mobile="NASNetMobile (unseen)")


def build(name: str, cache: Path) -> Path:
    """Build, train and save zoo model `name` under cache/name (kept when already there)."""
    d = cache / name
    if (d / "meta.json").exists():
        return d
    k, _ = _keras()
    builder, size, epochs, lr = {**ZOO, **UNSEEN}[name]
    k.utils.set_random_seed(SEED)
    model, scale = builder(size)
    n_bn = bn_momentum(model)
    train, ev = digits(size, scale)
    model.compile(optimizer=k.optimizers.Adam(lr), loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    start = time.time()
    model.fit(train["x"], train["y"], epochs=epochs, batch_size=32, shuffle=True, verbose=0)
    if hasattr(model, "_zoo_after_fit"):
        model._zoo_after_fit()
    seconds = time.time() - start
    _, acc = model.evaluate(ev["x"], ev["y"], verbose=0, batch_size=100)
    # a fresh optimizer: the loss stays in the compile config, no trained slots are saved
    model.compile(optimizer=k.optimizers.Adam(lr), loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    d.mkdir(parents=True, exist_ok=True)
    model.save(d / "model.keras")
    np.savez(d / "train.npz", **train)
    np.savez(d / "eval.npz", **ev)
    meta = {"name": name, "input": [size, size, 3], "scale": scale, "epochs": epochs, "lr": lr,
            "params": int(model.count_params()), "layers": len(model.layers), "bn_layers": n_bn,
            "train_seconds": round(seconds, 1), "eval_acc": round(float(acc), 4)}
    (d / "meta.json").write_text(json.dumps(meta, indent=1))
    return d


# --------------------------------------------------------------------------- runs

def policy_for(preset: str, quick: bool):
    if not quick:
        return preset
    from gate.config.policies import load_policy_file

    steps = load_policy_file(Path(preset)).policy.steps
    return {"extends": preset, "steps": [{s.kind: QUICK[s.kind]} for s in steps]} if steps else preset


def run_one(model_dir: Path, preset: str, out: Path, quick: bool) -> dict:
    out.mkdir(parents=True, exist_ok=True)
    cfg = {"model": str(model_dir / "model.keras"),
           "data": {"train": str(model_dir / "train.npz"), "eval": str(model_dir / "eval.npz")},
           "policy": policy_for(preset, quick), "thresholds": {"accuracy": {"max_drop": 0.02}},
           "benchmark": {"threads": 1, "warmup": 5, "runs": 50}}
    (out / "gate.yml").write_text(yaml.safe_dump(cfg, sort_keys=False))
    start = time.time()
    proc = subprocess.run([sys.executable, "-m", "gate", "check", "--config", str(out / "gate.yml"),
                           "--out", str(out / "report"), "--no-baseline", "--no-cache"], cwd=out, capture_output=True, text=True,
                          env={**os.environ, "PYTHONPATH": str(ROOT)})
    seconds = time.time() - start
    (out / "stdout.txt").write_text(proc.stdout + "\n--- stderr ---\n" + proc.stderr)
    report = json.loads((out / "report" / "report.json").read_text())
    return summarize(report, proc.returncode, seconds)


def summarize(report: dict, code: int, seconds: float) -> dict:
    row = {"exit": code, "seconds": round(seconds, 1), "status": report["status"]}
    ref, cand, orig = report.get("reference"), report.get("candidate"), report.get("original")
    if ref and cand and orig:
        acc = cand["evaluation"]["accuracy"]["top1"]
        row.update(accuracy=acc, original=orig["accuracy"]["top1"],
                   drop_pts=round(100 * (orig["accuracy"]["top1"] - acc), 2),
                   gzip_ratio=round(ref["bytes_gzip"] / cand["bytes_gzip"], 2),
                   latency_ratio=round(cand["latency"]["p50_ms"] / ref["latency"]["p50_ms"], 2))
    stages = report.get("stages") or []
    params = [s["params"] for s in stages if s.get("params")]
    if len(params) > 1:
        row["params"] = [params[0], params[-1]]
    plan = report.get("plan") or {}
    row["left_float"] = sum(len(s.get("left_float") or []) for s in plan.get("steps", []))
    outputs = set((plan.get("roles") or {}).get("output", []))
    keras_stages = [s for s in stages if s.get("kind") != "converted"]   # int8 rounding makes a few zeros
    if outputs and keras_stages:
        row["output_sparsity"] = max((s.get("layers", {}).get(n, {}).get("sparsity", 0.0)
                                      for s in keras_stages for n in outputs), default=0.0)
    if report.get("error"):
        row["error"] = report["error"]["message"][:400]
    return row


# --------------------------------------------------------------------------- tables

def cell(row: dict | None) -> str:
    if row is None:
        return "not run"
    if row["exit"] >= 2:
        return f"**{row['exit']}** refused ({row['seconds']:.0f} s)"
    return (f"{row['exit']} · {row['drop_pts']:+.2f} pts · {row['gzip_ratio']:.2f}x · "
            f"{row['latency_ratio']:.2f}x · {row['seconds']:.0f} s")


def table(results: dict, models: list[str], presets: list[str]) -> str:
    lines = ["| model | " + " | ".join(f"`{p}`" for p in presets) + " |",
             "|---|" + "---|" * len(presets)]
    for m in models:
        lines.append(f"| {LABELS.get(m, m)} | " + " | ".join(cell(results.get((m, p))) for p in presets) + " |")
    return "\n".join(lines)


def refusals(results: dict) -> str:
    lines = []
    for (m, p), row in sorted(results.items()):
        if row["exit"] >= 2:
            lines.append(f"- {LABELS.get(m, m)}, `{p}`: {row.get('error', '?')}")
    return "\n".join(lines)


def choice_table(results: dict, models: list[str]) -> str:
    """Which preset on which architecture: the smallest gzip among the runs that passed."""
    lines = ["| architecture | passes (exit 0) | smallest download that passed | fastest that passed |",
             "|---|---|---|---|"]
    for m in models:
        ok = {p: r for (mm, p), r in results.items() if mm == m and r["exit"] == 0}
        small = max(ok, key=lambda p: ok[p]["gzip_ratio"], default=None)
        fast = min(ok, key=lambda p: ok[p]["latency_ratio"], default=None)
        lines.append(f"| {LABELS.get(m, m)} | {', '.join(f'`{p}`' for p in ok) or '–'} | "
                     + (f"`{small}` ({ok[small]['gzip_ratio']:.2f}x)" if small else "–") + " | "
                     + (f"`{fast}` ({ok[fast]['latency_ratio']:.2f}x)" if fast else "–") + " |")
    return "\n".join(lines)


def replace_between(path: Path, marker: str, text: str) -> None:
    start, end = f"<!-- {marker}:start -->", f"<!-- {marker}:end -->"
    content = path.read_text(encoding="utf-8")
    i, j = content.index(start) + len(start), content.index(end)
    path.write_text(content[:i] + "\n" + text.strip() + "\n" + content[j:], encoding="utf-8")


def load_results(path: Path) -> dict:
    """The rows recorded so far, re-summarized from their reports where those are on disk."""
    results = {}
    if path.exists():
        for line in path.read_text().splitlines():
            r = json.loads(line)
            report = path.parent / "runs" / ("quick" if "quick" in path.name else "full") / r["model"] / r["preset"] \
                / "report" / "report.json"
            if report.exists():
                r = {**summarize(json.loads(report.read_text()), r["exit"], r["seconds"]),
                     "model": r["model"], "preset": r["preset"]}
            results[(r["model"], r["preset"])] = r
    return results


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--cache", required=True, type=Path, help="where the built models and the runs are kept")
    ap.add_argument("--models", default=",".join(ZOO), help=f"default: the zoo; also: {', '.join(UNSEEN)}")
    ap.add_argument("--presets", default=",".join(PRESETS))
    ap.add_argument("--quick", action="store_true", help="short fine-tuning budgets (the presets' steps, "
                                                         "fewer epochs)")
    ap.add_argument("--force", action="store_true", help="rerun what the results file already has")
    ap.add_argument("--table-only", action="store_true", help="no new runs: the tables from the results file")
    ap.add_argument("--write", action="store_true", help="put the tables into benchmarks/README.md and "
                                                         "docs/policies.md")
    args = ap.parse_args(argv)
    cache = args.cache.expanduser().resolve()
    models, presets = args.models.split(","), args.presets.split(",")
    results_path = cache / ("results-quick.jsonl" if args.quick else "results.jsonl")
    results = load_results(results_path)
    for m in [] if args.table_only else models:
        model_dir = build(m, cache)
        for p in presets:
            if (m, p) in results and not args.force:
                continue
            while (cache / "PAUSE").exists():   # between runs: lets other heavy work use the machine
                time.sleep(5)
            row = run_one(model_dir, p, cache / "runs" / ("quick" if args.quick else "full") / m / p, args.quick)
            row.update(model=m, preset=p)
            results[(m, p)] = row
            with results_path.open("a") as f:
                f.write(json.dumps(row) + "\n")
            print(f"{m:20s} {p:16s} {cell(row)}" + (f"  {row['error'][:160]}" if row.get("error") else ""),
                  flush=True)
    print("\n" + table(results, models, presets) + "\n\n" + refusals(results))
    if args.write:
        unseen = [m for m in models if m in UNSEEN]
        seen = [m for m in models if m not in UNSEEN]
        marker = "zoo-unseen" if unseen and not seen else "zoo-table"
        mine = {key: row for key, row in results.items() if key[0] in models}
        body = table(results, models, presets) + "\n\n" + (refusals(mine) or "No refusals.")
        replace_between(ROOT / "benchmarks" / "README.md", marker, body)
        if seen:
            replace_between(ROOT / "docs" / "policies.md", "zoo-choice", choice_table(results, seen))
    return 0


if __name__ == "__main__":
    sys.exit(main())
