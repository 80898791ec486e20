"""How noisy is each way of measuring a latency ratio, and does the gate catch real slowdowns?

On the digits CNN (`examples/digits`) and MobileNetV2-0.35 at 224x224 (weights=None),
side by side in one run, three ways of getting candidate/baseline latency:

- naive: the seed's method, median of 50 invoke()s of one interpreter per model (after 10
  warmup), one model after the other;
- tool: LiteRT's `benchmark_litert_model` (CompiledModel API), one subprocess per model,
  its result_json median (it rounds to 0.01 ms);
- gate: `gate.verdict.abtest.compare_latency` (interleaved instances, paired rounds, bootstrap CI,
  sequential looks within --budget seconds).

(a) A/A: the same model against itself, --repeats times. (b) Verdicts over --trials
trials against --max-ratio for A/A (a fail is a false alarm) and for two real, slower
variants whose true ratio is measured first with a long gate run (10 instances a model).
naive and tool have no interval: their verdict is "ratio > max_ratio".

`--neighbours N` starts N processes that stream 32 MB arrays through memory for the whole
run (a busy shared CI runner: they compete for cores, caches and memory bandwidth).

    python benchmarks/latency_noise.py [--trials 20] [--repeats 5] [--max-ratio 1.025]
        [--budget 30] [--neighbours 0] [--skip-mobilenet] [--skip-tool]
        [--skip-digits] [--zoo mobilenet_v3_small,efficientnet_b0] [--zoo-size 224]

`--zoo` adds keras.applications architectures of benchmarks/zoo.py (weights=None), with
slower variants made by 1x1 convolutions in front of the model (as many as a quick timing
says add ~5 % and ~10 %).
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from gate.console import native_stderr  # noqa: E402
from gate.measure.bench import cpu_name  # noqa: E402
from gate.measure.litert import make_interpreter, quantize_input  # noqa: E402
from gate.verdict.abtest import compare_latency  # noqa: E402

# --- models ----------------------------------------------------------------------------------

def digits_models() -> tuple[np.ndarray, dict[str, bytes], dict[str, str]]:
    from gate.measure.convert import reference_spec, to_tflite
    from gate.measure.model import load_model
    from gate.measure.tfenv import keras

    k = keras()

    def cnn(conv1: int = 16, extra: int = 0):
        layers = [k.layers.Input(shape=(8, 8, 1)), k.layers.Conv2D(conv1, 3, padding="same", activation="relu"),
                  k.layers.Conv2D(32, 3, padding="same", activation="relu"), k.layers.MaxPooling2D(2),
                  k.layers.Flatten(), k.layers.Dense(128, activation="relu")]
        layers += [k.layers.Dense(extra, activation="relu")] if extra else []
        return k.Sequential(layers + [k.layers.Dense(10, activation="softmax")])

    base = load_model(ROOT / "examples/digits/model.keras").keras
    models = {"base": base, "~5 %": cnn(extra=96), "~10 %": cnn(conv1=18)}
    what = {"~5 %": "an extra Dense(96) hidden layer", "~10 %": "conv1 with 18 filters instead of 16"}
    example = np.load(ROOT / "examples/digits/eval.npz")["x"][:1]
    return example, {n: to_tflite(m, reference_spec()).content for n, m in models.items()}, what


def mobilenet_models() -> tuple[np.ndarray, dict[str, bytes], dict[str, str]]:
    from gate.measure.convert import reference_spec, to_tflite
    from gate.measure.tfenv import keras

    k, layers = keras(), keras().layers

    def net(expansion: int = 0):
        base = k.applications.MobileNetV2(alpha=0.35, weights=None, input_shape=(224, 224, 3))
        if not expansion:
            return base
        # One more inverted-residual block at the 7x7 stage, then the usual head.
        x = base.get_layer("block_16_project_BN").output
        c = x.shape[-1]
        y = layers.ReLU(6.0)(layers.BatchNormalization()(layers.Conv2D(c * expansion, 1, use_bias=False)(x)))
        y = layers.ReLU(6.0)(layers.BatchNormalization()(layers.DepthwiseConv2D(3, padding="same",
                                                                                 use_bias=False)(y)))
        x = layers.Add()([x, layers.BatchNormalization()(layers.Conv2D(c, 1, use_bias=False)(y))])
        x = layers.ReLU(6.0)(layers.BatchNormalization()(layers.Conv2D(1280, 1, use_bias=False)(x)))
        return k.Model(base.input, layers.Dense(1000, activation="softmax")(layers.GlobalAveragePooling2D()(x)))

    models = {"base": net(), "~5 %": net(3), "~10 %": net(6)}
    what = {"~5 %": "one extra inverted-residual block at 7x7, expansion 3",
            "~10 %": "one extra inverted-residual block at 7x7, expansion 6"}
    example = np.random.default_rng(0).uniform(0, 1, (1, 224, 224, 3)).astype(np.float32)
    return example, {n: to_tflite(m, reference_spec()).content for n, m in models.items()}, what


ZOO = {"mobilenet_v3_small": ("MobileNetV3Small", {}), "efficientnet_b0": ("EfficientNetB0", {}),
       "mobilenet_v2": ("MobileNetV2", {"alpha": 0.35}), "resnet50": ("ResNet50", {}),
       "densenet121": ("DenseNet121", {})}


def zoo_models(name: str, size: int) -> tuple[np.ndarray, dict[str, bytes], dict[str, str]]:
    """A keras.applications architecture of benchmarks/zoo.py (weights=None, 1000 classes) at
    size x size, and two slower variants: 1x1 convolutions (3 -> 3 channels) in front of it,
    as many as add ~5 % and ~10 % to its latency by a quick timing of one such convolution
    (their cost is memory traffic, not MACs); the true ratios are measured in (b)."""
    from gate.measure.convert import reference_spec, to_tflite
    from gate.measure.tfenv import keras

    k = keras()
    cls, kwargs = ZOO[name]
    base = getattr(k.applications, cls)(weights=None, input_shape=(size, size, 3), **kwargs)
    example = np.random.default_rng(0).uniform(0, 255, (1, size, size, 3)).astype(np.float32)

    def with_convs(n: int) -> bytes:
        if n == 0:
            return to_tflite(base, reference_spec()).content
        i = k.Input((size, size, 3))
        x = i
        for _ in range(n):
            x = k.layers.Conv2D(3, 1)(x)
        return to_tflite(k.Model(i, base(x)), reference_spec()).content

    content, probe = with_convs(0), with_convs(4)
    t0, t4 = (median_invoke_ns(c, example, threads=1, runs=60) / 1e6 for c in (content, probe))
    per_conv = max((t4 - t0) / 4, 1e-6)
    n5, n10 = (max(1, round(frac * t0 / per_conv)) for frac in (0.05, 0.10))
    what = {"~5 %": f"{n5} 1x1 conv(s) 3->3 in front (aimed at +5 %: {t0:.2f} ms, {per_conv:.3f} ms a conv)",
            "~10 %": f"{n10} 1x1 conv(s) 3->3 in front (aimed at +10 %)"}
    return example, {"base": content, "~5 %": with_convs(n5), "~10 %": with_convs(n10)}, what


# --- the three methods -----------------------------------------------------------------------

def median_invoke_ns(content: bytes, example: np.ndarray, *, threads: int, runs: int = 50) -> float:
    """Median of `runs` invoke()s of one interpreter, after 10 untimed ones."""
    interp = make_interpreter(content, threads=threads)
    detail = interp.get_input_details()[0]
    interp.set_tensor(detail["index"], quantize_input(example.reshape(detail["shape"]), detail))
    for _ in range(10):
        interp.invoke()
    times = []
    for _ in range(runs):
        t0 = time.perf_counter_ns()
        interp.invoke()
        times.append(time.perf_counter_ns() - t0)
    return float(np.median(times))


def naive_ratio(base: bytes, cand: bytes, example: np.ndarray, threads: int) -> float:
    """The seed's way: median of 50 invoke()s of one interpreter per model, one after the other."""
    base_ns = median_invoke_ns(base, example, threads=threads)    # base first, as before
    return median_invoke_ns(cand, example, threads=threads) / base_ns


def tool_median_ms(path: Path, threads: int) -> float:
    out = path.with_suffix(".json")
    subprocess.run([sys.executable, "-m", "ai_edge_litert.tools.benchmark_litert_model", f"--model={path}",
                    f"--num_threads={threads}", f"--result_json={out}"], check=True, capture_output=True)
    return float(json.loads(out.read_text())["latency"]["median_ms"])


def tool_ratio(base: Path, cand: Path, threads: int) -> tuple[float, float, float]:
    a, b = tool_median_ms(base, threads), tool_median_ms(cand, threads)
    return b / a, a, b


def gate_verdict(base: bytes, cand: bytes, example: np.ndarray, args, seed: int, **kw):
    kw = {"max_ratio": args.max_ratio, "threads": args.threads, "time_budget_s": args.budget, **kw}
    return compare_latency(base, cand, example, seed=seed, **kw)


# --- tables ----------------------------------------------------------------------------------

def spread(ratios: list[float]) -> str:
    dev = max(abs(r - 1) for r in ratios)
    return f"{min(ratios):.3f}–{max(ratios):.3f} (max \\|dev\\| {100 * dev:.1f} %)"


def section(title: str, example: np.ndarray, models: dict[str, bytes], what: dict[str, str], args,
            tmp: Path) -> None:
    paths = {}
    for name, content in models.items():
        paths[name] = tmp / f"{title.split()[0]}-{len(paths)}.tflite"
        paths[name].write_bytes(content)
    base = models["base"]
    print(f"\n## {title}\n")
    print(f"load average {os.getloadavg()[0]:.2f} at start; max_ratio {args.max_ratio}, "
          f"budget {args.budget:g} s, threads {args.threads}\n")

    print(f"(a) A/A ratio over {args.repeats} repeats\n")
    print("| method | ratios | spread | seconds per measurement |")
    print("|---|---|---|---:|")
    rows = {"naive (median of 50 invoke()s each)": lambda r: naive_ratio(base, base, example, args.threads)}
    if not args.skip_tool:
        rows["LiteRT benchmark tool (median_ms)"] = lambda r: tool_ratio(paths["base"], paths["base"],
                                                                         args.threads)[0]
    rows["model-gate compare_latency"] = lambda r: gate_verdict(base, base, example, args, seed=100 + r).ratio
    for label, fn in rows.items():
        ratios, seconds = [], []
        for r in range(args.repeats):
            t0 = time.perf_counter()
            ratios.append(fn(r))
            seconds.append(time.perf_counter() - t0)
        print(f"| {label} | {' '.join(f'{x:.3f}' for x in ratios)} | {spread(ratios)} | {np.mean(seconds):.1f} |")
    if not args.skip_tool:
        _, a, b = tool_ratio(paths["base"], paths["base"], args.threads)
        print(f"\nThe tool's result_json medians are rounded to 0.01 ms: this model reads {a:.2f} / {b:.2f} ms.")

    print("\n(b) true ratios of the slower variants (one long gate run, 10 instances a model)\n")
    truth = {}
    for name in ("~5 %", "~10 %"):
        v = gate_verdict(base, models[name], example, args, seed=1, max_ratio=1e9, instances=10,
                         max_instances=10, rounds=args.true_rounds, time_budget_s=600)
        truth[name] = v.ratio
        print(f"- {name}: {what[name]}: **{v.ratio:.3f}** (95 % CI {v.ci_low:.3f}–{v.ci_high:.3f}, "
              f"{v.rounds} rounds, {v.seconds:.0f} s)")

    print(f"\nVerdicts over {args.trials} trials at max_ratio {args.max_ratio} "
          "(gate: pass / fail / inconclusive; naive, tool: ratio ≤ / > max_ratio)\n")
    print("| pair | true ratio | method | pass | fail | inconclusive | ratios (min–max) | seconds (mean / max) |")
    print("|---|---:|---|---:|---:|---:|---|---|")
    for name, true in (("A/A", 1.0), ("~5 %", truth["~5 %"]), ("~10 %", truth["~10 %"])):
        cand = base if name == "A/A" else models[name]
        methods = {"naive": lambda s: (naive_ratio(base, cand, example, args.threads), None)}
        if not args.skip_tool:
            methods["tool"] = lambda s: (tool_ratio(paths["base"], paths[name if name != "A/A" else "base"],
                                                    args.threads)[0], None)
        methods["model-gate"] = lambda s: (lambda v: (v.ratio, v.outcome))(gate_verdict(base, cand, example, args, s))
        for label, fn in methods.items():
            counts = {"pass": 0, "fail": 0, "inconclusive": 0}
            ratios, seconds = [], []
            for trial in range(args.trials):
                t0 = time.perf_counter()
                ratio, outcome = fn(trial)
                seconds.append(time.perf_counter() - t0)
                outcome = outcome or ("fail" if ratio > args.max_ratio else "pass")
                counts[outcome] += 1
                ratios.append(ratio)
            inc = counts["inconclusive"] if label == "model-gate" else "–"
            print(f"| {name} | {true:.3f} | {label} | {counts['pass']} | {counts['fail']} | {inc} | "
                  f"{min(ratios):.3f}–{max(ratios):.3f} | {np.mean(seconds):.1f} / {max(seconds):.1f} |", flush=True)
    print(f"\nload average {os.getloadavg()[0]:.2f} at the end")


NEIGHBOUR = "import numpy as np\na = np.ones(4_000_000)\nb = np.empty_like(a)\nwhile True:\n    np.copyto(b, a)\n"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--trials", type=int, default=20)
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--max-ratio", type=float, default=1.025)
    p.add_argument("--budget", type=float, default=30.0, help="time budget per gate verdict, seconds")
    p.add_argument("--true-rounds", type=int, default=200, help="rounds of the long run measuring true ratios")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--neighbours", type=int, default=0, help="memory-streaming processes running alongside")
    p.add_argument("--skip-mobilenet", action="store_true")
    p.add_argument("--skip-digits", action="store_true")
    p.add_argument("--zoo", default="", help=f"comma-separated zoo architectures to add ({', '.join(ZOO)})")
    p.add_argument("--zoo-size", type=int, default=224, help="their input size")
    p.add_argument("--skip-tool", action="store_true", help="leave out LiteRT's benchmark tool (subprocesses)")
    args = p.parse_args()
    print(f"# latency_noise  ({cpu_name()}, {os.cpu_count()} cores, {args.neighbours} noisy neighbours)")
    with tempfile.TemporaryDirectory() as tmp, native_stderr():
        digits = None if args.skip_digits else digits_models()
        mobilenet = None if args.skip_mobilenet else mobilenet_models()
        zoo = {name: zoo_models(name, args.zoo_size) for name in filter(None, args.zoo.split(","))}
        neighbours = [subprocess.Popen([sys.executable, "-c", NEIGHBOUR]) for _ in range(args.neighbours)]
        try:
            if digits:
                section("digits CNN", *digits, args, Path(tmp))
            if mobilenet:
                section("MobileNetV2-0.35 224x224", *mobilenet, args, Path(tmp))
            for name, built in zoo.items():
                section(f"{ZOO[name][0]} {args.zoo_size}x{args.zoo_size} (zoo)", *built, args, Path(tmp))
        finally:
            for proc in neighbours:
                proc.terminate()
                proc.wait()


if __name__ == "__main__":
    main()
