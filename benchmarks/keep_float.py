"""int8 against int8 with `convert.keep_float` variants on a zoo model, through the real
`gate check`, and what the per-layer diagnosis costs.

    python benchmarks/keep_float.py --cache ~/.cache/gate-zoo [--model efficientnet_b0]
        [--variant '{worst: 3}' --variant '{layers: ["^block7|^top"]}' ...]

Builds the zoo model (benchmarks/zoo.py: trained briefly on digits at 32x32, no download),
runs `gate check --no-baseline --no-cache` with `policy: int8` and then with each variant
(`extends: int8`, `convert.keep_float: VARIANT`; a variant with `activations: int16` runs
through `quantizer: litert`), and prints per run: accuracy (the Keras model's, then the
candidate's), gzip bytes and ratio against the float32 .tflite, the ops kept float, the
SNR coverage of the layers table, and the seconds of conversion (with the ablation) and
of the diagnosis (`timings_s.layers`).
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

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "benchmarks"))

DEFAULT_VARIANTS = ['{worst: 3}', '{layers: ["^block7|^top"]}', '{layers: ["^block[1-3]"]}',
                    '{layers: ["activation"]}', '{layers: ["."], activations: int16}']


def run(model_dir: Path, out: Path, variant: str | None) -> dict:
    out.mkdir(parents=True, exist_ok=True)
    policy: str | dict = "int8"
    if variant is not None:
        keep = yaml.safe_load(variant)
        convert = {"keep_float": keep}
        if keep.get("activations") == "int16":
            convert["quantizer"] = "litert"
        policy = {"extends": "int8", "convert": convert}
    cfg = {"model": str(model_dir / "model.keras"),
           "data": {"train": str(model_dir / "train.npz"), "eval": str(model_dir / "eval.npz")},
           "policy": policy, "thresholds": {"accuracy": {"max_drop": 0.01}},
           "benchmark": {"threads": 1, "warmup": 3, "runs": 30}}
    (out / "gate.yml").write_text(yaml.safe_dump(cfg, sort_keys=False))
    start = time.time()
    subprocess.run([sys.executable, "-m", "gate", "check", "--config", str(out / "gate.yml"), "--out", str(out),
                    "--no-baseline", "--no-cache", "--quiet"], capture_output=True, text=True,
                   env={**os.environ, "PYTHONPATH": str(ROOT)})
    r = json.loads((out / "report.json").read_text())
    row = {"variant": variant or "int8", "status": r["status"], "seconds": round(time.time() - start, 1)}
    if r.get("candidate") and r.get("original"):
        cand, ref = r["candidate"], r["reference"]
        layers = r.get("layers") or []
        q = [x for x in layers if x["quantized"] and x["op"] not in ("QUANTIZE", "DEQUANTIZE")]
        row.update(original=r["original"]["accuracy"]["top1"], accuracy=cand["evaluation"]["accuracy"]["top1"],
                   gzip=cand["bytes_gzip"], ratio=round(ref["bytes_gzip"] / cand["bytes_gzip"], 2),
                   kept=len((r.get("keep_float") or {}).get("kept", [])),
                   coverage=f"{sum(x['snr_db'] is not None for x in q)}/{len(q)}",
                   convert_s=r["timings_s"].get("convert_candidate"), layers_s=r["timings_s"].get("layers"))
    else:
        row["error"] = (r.get("error") or {}).get("message", "")[:200]
    return row


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--cache", type=Path, required=True)
    ap.add_argument("--model", default="efficientnet_b0")
    ap.add_argument("--variant", action="append", help="a keep_float mapping in YAML flow style")
    args = ap.parse_args()
    import zoo

    model_dir = zoo.build(args.model, args.cache)
    variants = [None, *(args.variant or DEFAULT_VARIANTS)]
    print("| keep_float | accuracy | gzip bytes (ratio vs float32) | ops kept float | SNR coverage | convert s | "
          "layers s |\n|---|---|---|---|---|---|---|")
    for i, variant in enumerate(variants):
        row = run(model_dir, args.cache / "keep_float" / args.model / f"run{i}", variant)
        if "error" in row:
            print(f"| `{row['variant']}` | error: {row['error']} | | | | | |")
            continue
        print(f"| `{row['variant']}` | {row['original']:.2%} → {row['accuracy']:.2%} | {row['gzip']:,} "
              f"({row['ratio']}x) | {row['kept']} | {row['coverage']} | {row['convert_s']} | {row['layers_s']} |",
              flush=True)


if __name__ == "__main__":
    main()
