"""Every post-training mode, side by side in one run: size, compression, accuracy, latency.

On the bundled digits CNN (real accuracy) and on MobileNetV2-0.35 at 96x96 built with
weights=None (a real architecture for size and latency; its accuracy is meaningless and
is not shown). Latency is the ratio of p50s to the float32 reference, measured
interleaved in one process by gate.measure.bench, so machine noise lands on both.

    python benchmarks/ptq_modes.py [--runs 300] [--threads 1] [--skip-mobilenet]
"""
from __future__ import annotations

import argparse
import gzip
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from gate.config.schema import BenchmarkSpec, ConvertSpec  # noqa: E402
from gate.console import native_stderr  # noqa: E402
from gate.errors import ModelError  # noqa: E402
from gate.measure.bench import benchmark  # noqa: E402
from gate.measure.convert import to_tflite  # noqa: E402
from gate.measure.data import load_split, representative  # noqa: E402
from gate.measure.evaluate import evaluate_keras, evaluate_tflite  # noqa: E402
from gate.measure.litert import make_interpreter  # noqa: E402
from gate.measure.model import load_model  # noqa: E402

MODES = [("none", "float32"), ("dynamic", "float32"), ("float16", "float32"), ("int8", "float32"),
         ("int8", "int8"), ("int16x8", "float32")]


def run(name: str, model, calib: np.ndarray, example: np.ndarray, spec: BenchmarkSpec,
        eval_xy: tuple[np.ndarray, np.ndarray] | None) -> None:
    converted, failed = {}, {}
    with native_stderr():
        for q, io in MODES:
            c = to_tflite(model, ConvertSpec(quantization=q, io=io), calib)
            try:  # the converter can emit a model the interpreter refuses: the gate says exit 2
                make_interpreter(c.content, threads=1)
                converted[f"{q}/{io}"] = c
            except ModelError as err:
                failed[f"{q}/{io}"] = err.message
        bench = benchmark({k: c.content for k, c in converted.items()}, example, spec)
    ref = converted["none/float32"].content
    ref_gz = len(gzip.compress(ref, 9))
    p50_ref = bench.stats["none/float32"].p50_ms
    base_acc = evaluate_keras(model, *eval_xy, [1], 256).top(1) if eval_xy else None
    print(f"\n## {name}  (runs={bench.settings['runs']}, threads={spec.threads}, cpu={bench.settings['cpu']})")
    if base_acc is not None:
        print(f"Keras accuracy {100 * base_acc:.2f} %")
    print("| mode | raw bytes | gzip bytes | ratio raw | ratio gzip | accuracy | p50 ms | p50 vs float |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|")
    for key, c in converted.items():
        gz = len(gzip.compress(c.content, 9))
        acc = (f"{100 * evaluate_tflite(c.content, *eval_xy, [1], 256).top(1):.2f} %" if eval_xy else "–")
        p50 = bench.stats[key].p50_ms
        print(f"| {key} | {len(c.content):,} | {gz:,} | {len(ref) / len(c.content):.2f}x | {ref_gz / gz:.2f}x "
              f"| {acc} | {p50:.4f} | {p50 / p50_ref:.2f}x |")
    for key, why in failed.items():
        print(f"| {key} | refused by the interpreter: {why} |||||||")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=300)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--skip-mobilenet", action="store_true")
    args = ap.parse_args()
    spec = BenchmarkSpec(threads=args.threads, warmup=20, runs=args.runs)

    digits = ROOT / "examples" / "digits"
    model = load_model(digits / "model.keras").keras
    train, ev = load_split(digits / "train.npz", "train"), load_split(digits / "eval.npz", "eval")
    run("digits CNN (examples/digits)", model, representative(train, 200), ev.x, spec, (ev.x, ev.y))

    if not args.skip_mobilenet:
        from gate.measure.tfenv import keras

        k = keras()
        k.utils.set_random_seed(0)
        mnet = k.applications.MobileNetV2(alpha=0.35, weights=None, input_shape=(96, 96, 3), classes=10)
        rng = np.random.default_rng(0)
        calib = rng.uniform(-1, 1, size=(50, 96, 96, 3)).astype(np.float32)
        run("MobileNetV2-0.35, 96x96, weights=None", mnet, calib, calib[:1], spec, None)


if __name__ == "__main__":
    main()
