"""The gate's timing script for a Linux board, copied there and run by the board's own Python
with its ai-edge-litert and numpy. Self-contained: it imports nothing of the gate (the
board has only this file). One JSON request in (argv[1]), one JSON answer on stdout.

Modes:
- facts: the board's machine, CPU, Python and LiteRT versions;
- bench: the measurements table, as gate.measure.bench times locally: the models
  interleaved visit by visit (order alternating per round), each visit `settle` untimed
  invokes then up to 5 timed ones; returns every timed invoke in ns, init and first call;
- ab: the A/B rounds, as gate.verdict.abtest times locally: `instances` interpreters per
  model, every round visits all of them in a random order, a visit = `settle` untimed
  invokes then `per_round` timed ones, the cell = the fastest; returns cells[round][model][instance] ns;
- run: every example of an .npz through the model by its signature (one at a time),
  outputs dequantized, written to an .npz (evaluate.on_target).

Inputs arrive keyed by the model's signature input names, already shaped (the runner maps
its data's names to the model's); for bench and ab as "<model index>/<input name>".
"""
import json
import os
import platform
import sys
import time

import numpy as np

VISIT_TIMED = 5


def interpreter(path, threads):
    from ai_edge_litert.interpreter import Interpreter

    interp = Interpreter(model_path=path, num_threads=threads)
    interp.allocate_tensors()
    return interp


def signature(interp):
    sigs = interp.get_signature_list()
    if sigs:
        key = "serving_default" if "serving_default" in sigs else next(iter(sigs))
        runner = interp.get_signature_runner(key)
        return runner, dict(runner.get_input_details()), dict(runner.get_output_details())
    ins = {d["name"]: d for d in interp.get_input_details()}
    outs = {d["name"]: d for d in interp.get_output_details()}
    return None, ins, outs


def quantize(x, detail):
    dtype = np.dtype(detail["dtype"])
    scale, zero = detail.get("quantization", (0.0, 0))
    if np.issubdtype(dtype, np.integer) and scale:
        info = np.iinfo(dtype)
        return np.clip(np.round(x.astype(np.float64) / scale + zero), info.min, info.max).astype(dtype)
    return x.astype(dtype)


def dequantize(y, detail):
    scale, zero = detail.get("quantization", (0.0, 0))
    if np.issubdtype(y.dtype, np.integer) and scale:
        return (y.astype(np.float32) - zero) * scale
    return y.astype(np.float32)


def with_input(path, example, threads):
    interp = interpreter(path, threads)
    _, ins, _ = signature(interp)
    resized = False
    for name, detail in ins.items():
        a = example[name]
        if tuple(a.shape) != tuple(int(d) for d in detail["shape"]):
            interp.resize_tensor_input(detail["index"], list(a.shape), strict=False)
            resized = True
    if resized:
        interp.allocate_tensors()
    for name, detail in ins.items():
        interp.set_tensor(detail["index"], quantize(example[name], detail))
    return interp


def load_example(path):
    with np.load(path) as data:
        return {k: data[k] for k in data.files}


def facts(_req):
    try:
        from importlib.metadata import version

        litert = version("ai-edge-litert")
    except Exception:  # noqa: BLE001
        litert = "unknown"
    cpu = platform.processor() or platform.machine()
    info = {}
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                key, _, value = line.partition(":")
                info.setdefault(key.strip().lower(), value.strip())
    except OSError:
        pass
    for key in ("model name", "model", "hardware"):     # x86; Raspberry Pi ("Model : Raspberry Pi 4 ..."); ARM SoCs
        if info.get(key) and not info[key].isdigit():
            cpu = info[key]
            break
    return {"hostname": platform.node(), "machine": platform.machine(), "cpu": cpu, "cpu_count": os.cpu_count(),
            "python": platform.python_version(), "ai_edge_litert": litert, "system": platform.platform()}


def bench(req):
    example = load_example(req["example"])
    timed = []
    for m, path in enumerate(req["models"]):
        feed = {k.split("/", 1)[1]: v for k, v in example.items() if k.startswith(f"{m}/")}
        t0 = time.perf_counter_ns()
        interp = with_input(path, feed, req["threads"])
        init = time.perf_counter_ns() - t0
        t0 = time.perf_counter_ns()
        interp.invoke()
        first = time.perf_counter_ns() - t0
        timed.append({"interp": interp, "init_ns": init, "first_ns": first, "times": []})
    for t in timed:
        for _ in range(req["warmup"]):
            t["interp"].invoke()
    start, rounds = time.perf_counter(), 0
    while len(timed[0]["times"]) < req["runs"] or time.perf_counter() - start < req["min_time_s"]:
        now = min(VISIT_TIMED, max(1, req["runs"] - len(timed[0]["times"])))
        for t in (timed if rounds % 2 == 0 else timed[::-1]):
            for _ in range(req["settle"]):
                t["interp"].invoke()
            for _ in range(now):
                t0 = time.perf_counter_ns()
                t["interp"].invoke()
                t["times"].append(time.perf_counter_ns() - t0)
        rounds += 1
    return [{"init_ns": t["init_ns"], "first_ns": t["first_ns"], "times_ns": t["times"]} for t in timed]


def ab(req):
    example = load_example(req["example"])
    rng = np.random.default_rng(req["seed"])
    invokes = [[], []]
    for _ in range(req["instances"]):
        for m in rng.permutation(2):
            path = req["models"][m]
            feed = {k.split("/", 1)[1]: v for k, v in example.items() if k.startswith(f"{m}/")}
            invokes[m].append(with_input(path, feed, req["threads"]).invoke)
    for _ in range(req["warmup"]):
        for group in invokes:
            for invoke in group:
                invoke()
    slots = [(m, i, f) for m, group in enumerate(invokes) for i, f in enumerate(group)]
    cells = []
    for _ in range(req["rounds"]):
        row = [[0.0] * req["instances"], [0.0] * req["instances"]]
        for j in rng.permutation(len(slots)):
            m, i, invoke = slots[j]
            for _ in range(req["settle"]):
                invoke()
            best = None
            for _ in range(req["per_round"]):
                t0 = time.perf_counter_ns()
                invoke()
                took = time.perf_counter_ns() - t0
                best = took if best is None or took < best else best
            row[m][i] = float(best)
        cells.append(row)
    return cells


def run(req):
    interp = interpreter(req["model"], req["threads"])
    runner, ins, outs = signature(interp)
    arrays = load_example(req["inputs"])
    n = len(next(iter(arrays.values())))
    chunks = {name: [] for name in outs}
    for i in range(n):
        feed = {name: quantize(arrays[name][i:i + 1], ins[name]) for name in ins}
        if runner is not None:
            result = runner(**feed)
        else:
            for name, detail in ins.items():
                interp.set_tensor(detail["index"], feed[name])
            interp.invoke()
            result = {name: interp.get_tensor(d["index"]) for name, d in outs.items()}
        for name, value in result.items():
            chunks[name].append(dequantize(np.asarray(value), outs[name]))
    outputs = {name: np.concatenate(v, axis=0) for name, v in chunks.items()}
    np.savez(req["outputs"], **outputs)
    return sorted(outputs)


MODES = {"facts": facts, "bench": bench, "ab": ab, "run": run}


def main(argv):
    with open(argv[1], encoding="utf-8") as f:
        req = json.load(f)
    answer = MODES[req["mode"]](req)
    sys.stdout.write(json.dumps({"ok": answer}) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
