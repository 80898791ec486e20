"""A stand-in for LiteRT's benchmark_model: times the .tflite with this machine's
ai_edge_litert and prints what the real tool prints (the format strings of
tflite/tools/benchmark/benchmark_model.cc, benchmark_tflite_model.cc, tflite/core/subgraph.cc
and tflite/profiling/profile_summary_formatter.cc in google-ai-edge/LiteRT).

--use_gpu=true emulates a GPU delegate that takes every op except the types listed in
$STANDIN_CPU_OPS (comma-separated, e.g. SOFTMAX). $STANDIN_CRASH_AFTER=N: runs after the
N-th die of SIGSEGV (counted in $STANDIN_DEVICE_ROOT/runs)."""
import os
import signal
import sys
import time
from pathlib import Path

import numpy as np


def flags(argv):
    out = {}
    for a in argv:
        key, _, value = a.removeprefix("--").partition("=")
        out[key] = value
    return out


def stat(us):
    a = np.asarray(us, dtype=np.float64)
    if len(a) and np.all(a == a[0]):
        return f"count={len(a)} curr={int(a[-1])}" + ("(all same)" if len(a) > 1 else "")
    return (f"count={len(a)} first={int(a[0])} curr={int(a[-1])} min={int(a.min())} max={int(a.max())} "
            f"avg={a.mean():g} std={int(a.std())}")


def main(argv):
    f = flags(argv)
    root = Path(os.environ.get("STANDIN_DEVICE_ROOT", "/tmp"))
    count_file = root / "runs"
    runs_so_far = int(count_file.read_text()) if count_file.exists() else 0
    count_file.write_text(str(runs_so_far + 1))
    print("STARTING!")
    print("Log parameter values verbosely: [0]")
    print(f"Min num runs: [{f.get('num_runs', 50)}]")
    print(f"Num threads: [{f.get('num_threads', -1)}]")
    print(f"Min warmup runs: [{f.get('warmup_runs', 1)}]")
    print(f"Graph: [{f['graph']}]")
    if f.get("enable_op_profiling") == "true":
        print("Enable op profiling: [1]")
    gpu = f.get("use_gpu") == "true"
    if gpu:
        print("Use gpu: [1]")
    from ai_edge_litert.interpreter import Interpreter

    t0 = time.perf_counter()
    interp = Interpreter(model_path=f["graph"], num_threads=max(1, int(f.get("num_threads", 1))))
    print(f"Loaded model {f['graph']}")
    print("INFO: Initialized TensorFlow Lite runtime.")
    ops = [(d["op_name"], d["index"]) for d in interp._get_ops_details()]
    tensors = {d["index"]: d["name"] for d in interp.get_tensor_details()}
    out_name = {d["index"]: tensors.get(d["outputs"][0], str(d["index"])) if len(d["outputs"]) else str(d["index"])
                for d in interp._get_ops_details()}
    cpu_types = {t for t in os.environ.get("STANDIN_CPU_OPS", "").split(",") if t}
    if gpu:
        print("INFO: Created TensorFlow Lite delegate for GPU.")
        on_gpu = [t not in cpu_types for t, _ in ops]
        parts = sum(1 for i, g in enumerate(on_gpu) if g and (i == 0 or not on_gpu[i - 1]))
        subsets = sum(1 for i in range(len(on_gpu)) if i == 0 or on_gpu[i] != on_gpu[i - 1])
        print(f"INFO: Replacing {sum(on_gpu)} out of {len(ops)} node(s) with delegate (TfLiteGpuDelegateV2) node, "
              f"yielding {subsets} partitions for subgraph 0 (main).")
        if all(on_gpu):
            print("Explicitly applied GPU delegate, and the model graph will be completely executed by the delegate.")
        elif parts:
            print(f"Explicitly applied GPU delegate, and the model graph will be partially executed by the delegate "
                  f"w/ {parts} delegate kernels.")
        else:
            print("Though GPU delegate is explicitly applied, the model graph will not be executed by the delegate.")
    interp.allocate_tensors()
    for d in interp.get_input_details():
        interp.set_tensor(d["index"], np.zeros(d["shape"], d["dtype"]))
    init_us = (time.perf_counter() - t0) * 1e6
    print(f"The input model file size (MB): {os.path.getsize(f['graph']) / 2**20:g}")
    print(f"Initialized session in {init_us / 1e3:g}ms.")
    crash_after = os.environ.get("STANDIN_CRASH_AFTER")
    if crash_after is not None and runs_so_far >= int(crash_after):
        sys.stdout.flush()
        os.kill(os.getpid(), signal.SIGSEGV)

    def timed(n):
        out = []
        for _ in range(n):
            t = time.perf_counter()
            interp.invoke()
            out.append((time.perf_counter() - t) * 1e6)
        return out

    warm = timed(max(1, int(f.get("warmup_runs", 1))))
    print(f"Running benchmark for at least {f.get('warmup_runs', 1)} iterations and at least 0 seconds but terminate "
          "if exceeding 150 seconds.")
    print(stat(warm) + "\n")
    runs = timed(max(1, int(f.get("num_runs", 50))))
    print(f"Running benchmark for at least {f.get('num_runs', 50)} iterations and at least 0 seconds but terminate "
          "if exceeding 150 seconds.")
    print(stat(runs) + "\n")
    if f.get("enable_op_profiling") == "true":
        total = float(np.mean(runs)) / 1e3
        print("Operator-wise Profiling Info for Regular Benchmark Runs:")
        print("============================== Run Order ==============================")
        print("\t             [node type]\t  [start]\t  [first]\t [avg ms]\t     [%]\t  [cdf%]\t  [mem KB]\t"
              "[times called]\t[Name]")
        rows = []
        if gpu and any(t not in cpu_types for t, _ in ops):
            rows.append(("TfLiteGpuDelegateV2", "TfLiteGpuDelegateV2"))
        rows += [(t, out_name[i]) for t, i in ops if not gpu or t in cpu_types]
        start, cdf = 0.0, 0.0
        for t, name in rows:
            ms = total / len(rows)
            pct = 100 / len(rows)
            cdf += pct
            print(f"\t{t:>24}\t{start:9.3f}\t{ms:9.3f}\t{ms:9.3f}\t{pct:7.3f}%\t{cdf:7.3f}%\t{0:10.3f}\t{1:9d}\t[{name}]")
            start += ms
        print()
    print(f"Inference timings in us: Init: {int(init_us)}, First inference: {int(warm[0])}, Warmup (avg): "
          f"{np.mean(warm):g}, Inference (avg): {np.mean(runs):g}")
    print("Note: as the benchmark tool itself affects memory footprint, the following is only APPROXIMATE to the "
          "actual memory footprint of the model at runtime. Take the information at your discretion.")
    print("Memory footprint delta from the start of the tool (MB): init=6.01953 overall=13.0742")
    if f.get("report_peak_memory_footprint") == "true":
        print("Overall peak memory footprint (MB) via periodic monitoring: 14.25")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
