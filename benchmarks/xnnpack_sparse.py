"""The latency-xnnpack preset on a real MobileNet-like model: PruneForLatencyOnXNNPack
(1x1 convs), sparse float32 conversion, latency vs the dense float32 model side by side.

A MobileNetV1-style body at 96x96x3 (ZeroPadding + 3x3 stride-2 conv stem, depthwise 3x3 +
pointwise 1x1 blocks, global average pooling: the structure PruneForLatencyOnXNNPack
requires; tf_keras' MobileNetV2 stem uses 'same' padding and is refused), fine-tuned a
few epochs on random data (accuracy is meaningless here; sparsity, size and latency are
real).

    python benchmarks/xnnpack_sparse.py [--runs 300] [--final-sparsity 0.75]
"""
from __future__ import annotations

import argparse
import gzip
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from gate.config.schema import BenchmarkSpec, ConvertSpec, Policy  # noqa: E402
from gate.console import native_stderr  # noqa: E402
from gate.measure.bench import benchmark  # noqa: E402
from gate.measure.convert import to_tflite  # noqa: E402
from gate.measure.data import Split  # noqa: E402
from gate.optimize import apply_steps  # noqa: E402
from gate.optimize.context import StepContext  # noqa: E402
from gate.optimize.finetune import CompileInfo  # noqa: E402


def mobilenet_like(k):
    inp = k.Input((96, 96, 3))
    x = k.layers.ZeroPadding2D(1)(inp)
    x = k.layers.ReLU()(k.layers.BatchNormalization()(k.layers.Conv2D(32, 3, strides=2, use_bias=False)(x)))
    for filters, stride in ((64, 1), (128, 2), (128, 1), (256, 2), (256, 1), (512, 2)):
        if stride == 2:  # XNNPACK's sparse path takes stride-2 depthwise as ZeroPadding(1) + VALID
            x = k.layers.DepthwiseConv2D(3, strides=2, padding="valid", use_bias=False)(k.layers.ZeroPadding2D(1)(x))
        else:
            x = k.layers.DepthwiseConv2D(3, padding="same", use_bias=False)(x)
        x = k.layers.ReLU()(k.layers.BatchNormalization()(x))
        x = k.layers.Conv2D(filters, 1, use_bias=False)(x)
        x = k.layers.ReLU()(k.layers.BatchNormalization()(x))
    x = k.layers.Flatten()(k.layers.GlobalAveragePooling2D(keepdims=True)(x))
    return k.Model(inp, k.layers.Dense(10, activation="softmax")(x), name="mobilenet_like")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=300)
    ap.add_argument("--final-sparsity", type=float, default=0.75)
    args = ap.parse_args()
    from gate.measure.tfenv import keras

    k = keras()
    k.utils.set_random_seed(0)
    model = mobilenet_like(k)
    model.compile(k.optimizers.Adam(1e-3), "sparse_categorical_crossentropy")
    rng = np.random.default_rng(0)
    x = rng.uniform(-1, 1, size=(256, 96, 96, 3)).astype(np.float32)
    y = rng.integers(0, 10, size=256)
    policy = Policy.model_validate({"steps": [{"prune": {
        "initial_sparsity": 0.3, "final_sparsity": args.final_sparsity, "pruning_policy": "xnnpack",
        "finetune": {"epochs": 2, "batch_size": 32, "learning_rate": 5e-4}}}],
        "convert": {"quantization": "none", "sparsity": True}})
    with native_stderr():
        pruned, stages = apply_steps(model, policy.steps, StepContext(Split("train", None, x, y, ""),
                                                                    CompileInfo.of(model)), lambda m, c: {})
        dense = to_tflite(model, ConvertSpec(quantization="none")).content
        sparse_dense_storage = to_tflite(pruned, ConvertSpec(quantization="none")).content
        sparse = to_tflite(pruned, policy.convert).content
        result = benchmark({"dense float32": dense, "pruned, dense storage": sparse_dense_storage,
                            "pruned, sparse (latency-xnnpack)": sparse}, x[:1], BenchmarkSpec(warmup=20, runs=args.runs))
    changed = stages[-1].selection["changed"]
    sp = np.mean([stages[-1].layers[n].sparsity for n in changed if n in stages[-1].layers])
    print(f"MobileNetV1-style 96x96: {len(changed)} 1x1 Conv2D layers pruned, mean sparsity {sp:.1%}")
    print(f"({result.settings['runs']} interleaved rounds, 1 thread, {result.settings['cpu']})\n")
    print("| model | raw bytes | gzip bytes | p50 ms | p50 vs dense |")
    print("|---|---:|---:|---:|---:|")
    base = result.stats["dense float32"].p50_ms
    for name, content in (("dense float32", dense), ("pruned, dense storage", sparse_dense_storage),
                          ("pruned, sparse (latency-xnnpack)", sparse)):
        st = result.stats[name]
        print(f"| {name} | {len(content):,} | {len(gzip.compress(content, 9)):,} | {st.p50_ms:.3f} "
              f"| {st.p50_ms / base:.2f}x |")


if __name__ == "__main__":
    main()
