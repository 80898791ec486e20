"""The seed article's collaborative recipe on the digits example, written by hand with tfmot
and the LiteRT interpreter: what `gate check` does for that policy, without the gate.

    python benchmarks/handwritten_seed.py [--runs 200]

Prune (PolynomialDecay 0.2 -> 0.8, 5 epochs) -> 16 clusters (kmeans++, sparsity kept,
3 epochs) -> CQAT (2 epochs at 1e-5) -> dynamic-range TFLite; the float32 reference for
the compression ratio; both scored on the eval split; both timed interleaved in LiteRT.
benchmarks/overhead.py times this against `gate check` with the same policy.
"""
from __future__ import annotations

import argparse
import gzip
import json
import os
import time
from pathlib import Path

os.environ["TF_USE_LEGACY_KERAS"] = "1"
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402

DIGITS = Path(__file__).resolve().parent.parent / "examples" / "digits"


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=200)
    ap.add_argument("--warmup", type=int, default=20)
    args = ap.parse_args()
    start = time.perf_counter()

    import tensorflow as tf
    import tensorflow_model_optimization as tfmot
    import tf_keras as keras
    from ai_edge_litert.interpreter import Interpreter

    model = keras.models.load_model(DIGITS / "model.keras")
    train, ev = np.load(DIGITS / "train.npz"), np.load(DIGITS / "eval.npz")
    x, y, xe, ye = train["x"], train["y"], ev["x"], ev["y"]
    original_acc = float((model.predict(xe, verbose=0).argmax(1) == ye).mean())
    steps_per_epoch = -(-len(x) // 32)

    def finetune(m, epochs, lr, callbacks=()):
        m.compile(keras.optimizers.Adam(lr), "sparse_categorical_crossentropy", metrics=["accuracy"])
        m.fit(x, y, epochs=epochs, batch_size=32, verbose=0, callbacks=list(callbacks))
        return m

    base = keras.models.clone_model(model)
    base.set_weights(model.get_weights())
    sk = tfmot.sparsity.keras
    schedule = sk.PolynomialDecay(0.2, 0.8, 0, steps_per_epoch * 5 - 1, frequency=10)
    pruned = finetune(sk.prune_low_magnitude(base, pruning_schedule=schedule), 5, 1e-3, [sk.UpdatePruningStep()])
    pruned = sk.strip_pruning(pruned)

    ck = tfmot.clustering.keras
    clustered = ck.cluster_weights(pruned, number_of_clusters=16,
                                   cluster_centroids_init=ck.CentroidInitialization.KMEANS_PLUS_PLUS,
                                   preserve_sparsity=True)
    clustered = ck.strip_clustering(finetune(clustered, 3, 1e-3))

    qk = tfmot.quantization.keras
    scheme = tfmot.experimental.combine.Default8BitClusterPreserveQuantizeScheme(preserve_sparsity=True)
    with qk.quantize_scope():
        cqat = qk.quantize_apply(qk.quantize_annotate_model(clustered), scheme)
    cqat = finetune(cqat, 2, 1e-5)

    def convert(m, dynamic: bool) -> bytes:
        conv = tf.lite.TFLiteConverter.from_keras_model(m)
        if dynamic:
            conv.optimizations = [tf.lite.Optimize.DEFAULT]
        return conv.convert()

    candidate, reference = convert(cqat, True), convert(model, False)

    def accuracy(content: bytes) -> float:
        interp = Interpreter(model_content=content)
        inp, out = interp.get_input_details()[0], interp.get_output_details()[0]
        interp.resize_tensor_input(inp["index"], [len(xe), *inp["shape"][1:]])
        interp.allocate_tensors()
        interp.set_tensor(inp["index"], xe.astype(np.float32))
        interp.invoke()
        return float((interp.get_tensor(out["index"]).argmax(1) == ye).mean())

    cand_acc = accuracy(candidate)
    interps = []
    for content in (reference, candidate):
        it = Interpreter(model_content=content, num_threads=1)
        it.allocate_tensors()
        it.set_tensor(it.get_input_details()[0]["index"], xe[:1].astype(np.float32))
        for _ in range(args.warmup):
            it.invoke()
        interps.append(it)
    times = [[], []]
    for r in range(args.runs):
        for i in ((0, 1) if r % 2 == 0 else (1, 0)):
            t0 = time.perf_counter_ns()
            interps[i].invoke()
            times[i].append(time.perf_counter_ns() - t0)
    p50 = [float(np.median(t)) / 1e6 for t in times]
    gz = [len(gzip.compress(c, 9)) for c in (reference, candidate)]
    print(json.dumps({"original_accuracy": original_acc, "candidate_accuracy": cand_acc,
                      "bytes_gzip": gz, "compression": gz[0] / gz[1], "p50_ms": p50,
                      "seconds": round(time.perf_counter() - start, 2)}))


if __name__ == "__main__":
    main()
