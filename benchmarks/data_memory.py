"""Peak memory and examples per second of `gate check` against the eval-set size, with the
eval set as 64x64 RGB PNGs in TFRecord shards (gate.measure.sources: streamed, decoded once
to a temporary file as uint8, scaled per batch).

    python benchmarks/data_memory.py [--sizes 1000,10000,50000] [--check 25000] [--work DIR]

Builds (no download) a small Keras 3 CNN at 64x64x3 and the images: scikit-learn's digits
upscaled to 64x64, tinted per channel, PNG-encoded, 4 shards per set (train: 1,000 images
for int8 calibration). Each size runs the real `gate check --no-baseline` (policy int8) in
a subprocess under `/usr/bin/time -v`, while this script samples the RSS of the whole
process tree (gate + its worker) from /proc every 50 ms. Columns: the largest single
process (time -v's "Maximum resident set size"), the sampled peak of the tree's sum, and
examples per second through data reading and the three evaluations (Keras, float32 and
int8 .tflite), from the report's stage timings. `--check N` asserts the tree's peak is at
most 2 GiB for N eval images.
"""
from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
GIB = 1 << 30
SIZE = 64


def _tf():
    os.environ.pop("TF_USE_LEGACY_KERAS", None)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import keras
    import tensorflow as tf

    return tf, keras


def build_model(path: Path) -> None:
    tf, keras = _tf()
    keras.utils.set_random_seed(0)
    model = keras.Sequential([
        keras.Input(shape=(SIZE, SIZE, 3), name="image"),
        keras.layers.Conv2D(8, 3, strides=2, activation="relu"),
        keras.layers.Conv2D(16, 3, strides=2, activation="relu"),
        keras.layers.GlobalAveragePooling2D(),
        keras.layers.Dense(10, activation="softmax"),
    ])
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    model.save(path)


def write_set(directory: Path, n: int, seed: int, shards: int = 4) -> None:
    """n 64x64x3 PNGs with int64 labels in `shards` TFRecord files (skipped when present)."""
    if (directory / "done").exists():
        return
    import numpy as np
    from sklearn.datasets import load_digits

    tf, _ = _tf()
    directory.mkdir(parents=True, exist_ok=True)
    d = load_digits()
    base = tf.image.resize((d.images * (255 / 16))[..., None], (SIZE, SIZE)).numpy()
    rng = np.random.default_rng(seed)
    writers = [tf.io.TFRecordWriter(str(directory / f"part-{i}.tfrecord")) for i in range(shards)]
    for i in range(n):
        j = int(rng.integers(len(base)))
        tint = rng.uniform(0.4, 1.0, size=3)
        img = np.clip(base[j] * tint, 0, 255).astype(np.uint8)
        feature = {"image": tf.train.Feature(bytes_list=tf.train.BytesList(value=[tf.io.encode_png(img).numpy()])),
                   "label": tf.train.Feature(int64_list=tf.train.Int64List(value=[int(d.target[j])]))}
        writers[i % shards].write(tf.train.Example(features=tf.train.Features(feature=feature)).SerializeToString())
    for w in writers:
        w.close()
    (directory / "done").write_text(str(n))


def tree_rss(root: int) -> int:
    """Sum of VmRSS (bytes) of `root` and every descendant."""
    total, stack = 0, [root]
    while stack:
        pid = stack.pop()
        try:
            status = Path(f"/proc/{pid}/status").read_text()
            match = re.search(r"^VmRSS:\s+(\d+) kB", status, re.M)
            total += int(match.group(1)) * 1024 if match else 0
            for task in Path(f"/proc/{pid}/task").iterdir():
                stack += [int(c) for c in (task / "children").read_text().split()]
        except (OSError, ValueError):
            continue
    return total


def run(work: Path, n: int) -> dict:
    evals = work / f"eval-{n}"
    write_set(evals, n, seed=n)
    out = work / f"out-{n}"
    config = work / f"gate-{n}.yml"
    config.write_text(json.dumps({
        "model": str(work / "model.keras"), "policy": "int8",
        "data": {"train": {"tfrecord": str(work / "train" / "*.tfrecord"), "x": "image", "y": "label",
                           "scale": "1/255"},
                 "eval": {"tfrecord": str(evals / "*.tfrecord"), "x": "image", "y": "label", "scale": "1/255"}},
        "benchmark": {"warmup": 2, "runs": 10}, "limits": {"memory_mb": 16384}}))
    cmd = ["/usr/bin/time", "-v", sys.executable, "-m", "gate", "check", "--config", str(config), "--out", str(out),
           "--no-baseline", "--quiet"]
    env = {**os.environ, "GATE_NO_CACHE": "1"}
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, cwd=ROOT)
    peak = [0]

    def sample() -> None:
        while proc.poll() is None:
            peak[0] = max(peak[0], tree_rss(proc.pid))
            time.sleep(0.05)

    sampler = threading.Thread(target=sample, daemon=True)
    start = time.perf_counter()
    sampler.start()
    _, err = proc.communicate()
    wall = time.perf_counter() - start
    sampler.join()
    largest = int(re.search(r"Maximum resident set size \(kbytes\): (\d+)", err).group(1)) * 1024
    report = json.loads((out / "report.json").read_text())
    timings = report.get("timings_s", {})
    streamed = sum(v for k, v in timings.items() if k in ("data", "evaluate_original", "evaluate"))
    return {"examples": n, "exit": proc.returncode, "largest_process_bytes": largest, "tree_peak_bytes": peak[0],
            "wall_s": round(wall, 1), "data_and_eval_s": round(streamed, 1),
            "examples_per_s": round(n * 3 / streamed) if streamed else None,
            "accuracy": report.get("original", {}).get("accuracy", {}).get("top1"),
            "eval_tfrecord_bytes": sum(p.stat().st_size for p in evals.glob("*.tfrecord"))}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="1000,10000,50000")
    parser.add_argument("--check", type=int, default=25000, help="eval size whose tree peak must be <= 2 GiB (0: none)")
    parser.add_argument("--work", type=Path, default=Path("/tmp/gate-data-memory"))
    args = parser.parse_args()
    args.work.mkdir(parents=True, exist_ok=True)
    if not (args.work / "model.keras").exists():
        build_model(args.work / "model.keras")
    write_set(args.work / "train", 1000, seed=1)
    sizes = [int(s) for s in args.sizes.split(",") if s]
    if args.check and args.check not in sizes:
        sizes.append(args.check)
    print("| eval images | float32 would be | TFRecord | largest process | process tree peak | data + 3 evals | "
          "examples/s | exit |")
    print("|---|---|---|---|---|---|---|---|")
    results = []
    for n in sorted(sizes):
        r = run(args.work, n)
        results.append(r)
        print(f"| {n:,} | {n * SIZE * SIZE * 3 * 4 / GIB:.2f} GiB | {r['eval_tfrecord_bytes'] / (1 << 20):.0f} MiB | "
              f"{r['largest_process_bytes'] / GIB:.2f} GiB | {r['tree_peak_bytes'] / GIB:.2f} GiB | "
              f"{r['data_and_eval_s']} s | {r['examples_per_s']} | {r['exit']} |", flush=True)
    (args.work / "results.json").write_text(json.dumps(results, indent=1))
    if args.check:
        [r] = [r for r in results if r["examples"] == args.check]
        ok = r["exit"] == 0 and r["tree_peak_bytes"] <= 2 * GIB
        print(f"{args.check:,} eval images: exit {r['exit']}, process tree peak {r['tree_peak_bytes'] / GIB:.2f} GiB "
              f"({'<=' if ok else '>'} 2 GiB)")
        sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
