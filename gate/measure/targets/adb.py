"""An Android device over adb, timed by LiteRT's `benchmark_model` (the user's ABI build).

Both .tflite files and the binary go to /data/local/tmp/model-gate/ (removed again by
close()). Every figure is one benchmark_model process per model, reference and candidate
alternating (the order flips each round) so both see the same thermal state:

- the measurements table: TABLE_ROUNDS rounds with the configured flags, then one run per
  model with --enable_op_profiling and --report_peak_memory_footprint (delegation, peak
  memory; its timings are not used: profiling slows every op);
- the A/B test: one round = one run per model; its cell is that run's `Inference (avg)`.
  Each run is a new process, so placement in memory is drawn again every round and the
  bootstrap over rounds covers it (one instance per model, no placement term).
"""
from __future__ import annotations

import hashlib
import shlex
import shutil
import subprocess
from collections.abc import Mapping
from pathlib import Path

import numpy as np

from gate.config.schema import AdbTarget as AdbSpec
from gate.config.schema import BenchmarkSpec
from gate.errors import TargetCrash, TargetError
from gate.measure.bench import BenchResult, Latency
from gate.measure.targets.protocol import Where
from gate.measure.targets.benchmark_model import BenchmarkModelRun, OutputError, parse
from gate.measure.targets.delegation import Delegation, from_run

DEVICE_DIR = "/data/local/tmp/model-gate"
TABLE_ROUNDS = 2
FIELD = "benchmark.target.adb"
NOT_RUNNABLE = ("not executable", "exec format error", "cannot execute", "CANNOT LINK EXECUTABLE",
                "Permission denied", "inaccessible or not found", "No such file or directory")
CRASH_SIGNS = ("Segmentation fault", "Aborted", "SIGSEGV", "SIGABRT", "Bus error", "Illegal instruction",
               "Fatal signal")


class AdbTarget:
    def __init__(self, spec: AdbSpec, root: Path):
        self.spec = spec
        self.serial = ""
        self.adb = _client(spec.adb, root)
        self.serial = self._pick_device()
        try:
            self._prepare(root)
        except BaseException:
            self.close()
            raise

    def _prepare(self, root: Path) -> None:
        spec = self.spec
        props = {key: self._shell(f"getprop {key}", what="reading the device's properties").stdout.strip()
                 for key in ("ro.product.model", "ro.product.cpu.abi", "ro.build.version.release")}
        self.abi = props["ro.product.cpu.abi"] or "unknown ABI"
        model = props["ro.product.model"] or self.serial
        self.where = Where("adb", f"{model} ({self.abi}, Android {props['ro.build.version.release'] or '?'}, "
                                  f"adb serial {self.serial})",
                           {"serial": self.serial, "model": props["ro.product.model"], "abi": props["ro.product.cpu.abi"],
                            "android": props["ro.build.version.release"], "tool": "benchmark_model",
                            "delegate": spec.delegate})
        binary = (root / spec.benchmark_model) if not Path(spec.benchmark_model).is_absolute() \
            else Path(spec.benchmark_model)
        if not binary.is_file():
            raise TargetError(f"expected LiteRT's benchmark_model binary for {self.abi}; {binary} is not a file",
                              field=f"{FIELD}.benchmark_model",
                              hint="download the build for the device's ABI from LiteRT's releases and commit "
                                   "or fetch it before the gate runs")
        self._shell(f"rm -rf {DEVICE_DIR} && mkdir -p {DEVICE_DIR}", what="creating " + DEVICE_DIR)
        self.binary = f"{DEVICE_DIR}/benchmark_model"
        self._push(binary, self.binary)
        self._shell(f"chmod 755 {self.binary}", what="making benchmark_model executable")
        self.pushed: dict[str, str] = {}
        self.runs = 0

    # -- adb ---------------------------------------------------------------------------

    def _run(self, args: list[str], *, what: str, timeout: float | None = None) -> subprocess.CompletedProcess:
        try:
            return subprocess.run([self.adb, *args], capture_output=True, text=True, errors="replace",
                                  timeout=timeout or self.spec.timeout_s)
        except subprocess.TimeoutExpired:
            raise TargetError(f"adb did not answer within {timeout or self.spec.timeout_s:g} s while {what}",
                              field=f"{FIELD}.timeout_s") from None
        except OSError as exc:
            raise TargetError(f"cannot run the adb client {self.adb}: {exc.strerror or exc}",
                              field=f"{FIELD}.adb") from None

    def _shell(self, command: str, *, what: str, check: bool = True) -> subprocess.CompletedProcess:
        out = self._run(["-s", self.serial, "shell", command], what=what)
        if check and out.returncode != 0:
            raise TargetError(f"adb shell failed while {what} on {self.serial} (exit {out.returncode}): "
                              f"{_tail(out.stdout + out.stderr)}", field=FIELD)
        return out

    def _push(self, local: Path, remote: str) -> None:
        out = self._run(["-s", self.serial, "push", str(local), remote], what=f"pushing {local.name}")
        if out.returncode != 0:
            raise TargetError(f"adb push {local.name} to {self.serial}:{remote} failed: "
                              f"{_tail(out.stdout + out.stderr)}", field=FIELD)

    def _pick_device(self) -> str:
        out = self._run(["devices"], what="listing devices", timeout=60)
        if out.returncode != 0:
            raise TargetError(f"`{self.adb} devices` failed (exit {out.returncode}): {_tail(out.stderr)}",
                              field=f"{FIELD}.adb")
        states = {}
        for line in out.stdout.splitlines()[1:]:
            parts = line.split()
            if len(parts) >= 2:
                states[parts[0]] = parts[1]
        ready = [s for s, state in states.items() if state == "device"]
        listed = ", ".join(f"{s} ({state})" for s, state in states.items()) or "none"
        field = f"{FIELD}.serial"
        if self.spec.serial is not None:
            state = states.get(self.spec.serial)
            if state == "device":
                return self.spec.serial
            if state is None:
                raise TargetError(f"expected the Android device {self.spec.serial} attached; `adb devices` lists: "
                                  f"{listed}", field=field, hint="plug the device in (USB debugging on) or fix "
                                                                  "the serial")
            raise TargetError(f"the Android device {self.spec.serial} is {state}, not ready", field=field,
                              hint="accept the USB debugging prompt on the device (unauthorized) or reconnect it")
        if len(ready) == 1:
            return ready[0]
        if not ready:
            raise TargetError(f"no Android device attached: `adb devices` lists {listed}", field=field,
                              hint="attach a device with USB debugging on, or run `gate check --target local`")
        raise TargetError(f"{len(ready)} Android devices attached ({listed}): say which one", field=field)

    # -- benchmark_model ------------------------------------------------------------------

    def _model(self, name: str, content: bytes) -> str:
        digest = hashlib.sha256(content).hexdigest()[:16]
        if digest not in self.pushed:
            import tempfile

            with tempfile.TemporaryDirectory(prefix="gate-adb-") as tmp:
                local = Path(tmp) / f"{name}-{digest}.tflite"
                local.write_bytes(content)
                remote = f"{DEVICE_DIR}/{local.name}"
                self._push(local, remote)
            self.pushed[digest] = remote
        return self.pushed[digest]

    def flags(self, graph: str, spec_threads: int, warmup: int, runs: int, min_secs: float, *,
              profile: bool = False) -> list[str]:
        flags = [f"--graph={graph}", f"--num_threads={spec_threads}", f"--warmup_runs={warmup}",
                 f"--num_runs={runs}", f"--min_secs={min_secs:g}", "--warmup_min_secs=0"]
        if self.spec.delegate == "gpu":
            flags.append("--use_gpu=true")
        elif self.spec.delegate == "nnapi":
            flags.append("--use_nnapi=true")
        flags += self.spec.flags
        if profile:
            flags += ["--enable_op_profiling=true", "--report_peak_memory_footprint=true"]
        return flags

    def run_model(self, name: str, content: bytes, *, threads: int, warmup: int, runs: int, min_secs: float = 0.0,
                  profile: bool = False) -> BenchmarkModelRun:
        graph = self._model(name, content)
        command = " ".join(shlex.quote(a) for a in [self.binary, *self.flags(graph, threads, warmup, runs, min_secs,
                                                                              profile=profile)])
        out = self._run(["-s", self.serial, "shell", command], what=f"running benchmark_model on the {name}")
        self.runs += 1
        text = out.stdout + out.stderr
        if out.returncode != 0 or "Inference timings in us" not in text:
            raise self._failure(name, out.returncode, text)
        try:
            return parse(text)
        except OutputError as exc:
            raise TargetError(f"benchmark_model's output on {self.where.name} could not be read: {exc}: "
                              f"{_tail(text)}", field=FIELD) from None

    def _failure(self, name: str, code: int, text: str) -> TargetError:
        device = self.where.name
        if any(sign.lower() in text.lower() for sign in NOT_RUNNABLE) and "Loaded model" not in text:
            return TargetError(f"benchmark_model does not run on {device}: {_tail(text, 2)}",
                               field=f"{FIELD}.benchmark_model",
                               hint=f"use LiteRT's benchmark_model built for {self.abi} (the device's "
                                    "ro.product.cpu.abi)")
        if code > 128 or code < 0 or any(sign in text for sign in CRASH_SIGNS):
            signal = code - 128 if code > 128 else -code
            return TargetCrash(f"benchmark_model crashed on {device} running the {name} model "
                               f"(exit {code}, signal {signal}): {_tail(text, 3)}", field=FIELD,
                               hint="run the same command by hand (adb shell) to see the crash; a delegate that "
                                    "cannot run the model crashes some drivers")
        return TargetError(f"benchmark_model failed on {device} for the {name} model (exit {code}): "
                           f"{_tail(text, 3)}", field=FIELD)

    # -- Target -------------------------------------------------------------------------

    def benchmark(self, models: dict[str, bytes], example: Mapping[str, np.ndarray],
                  spec: BenchmarkSpec) -> BenchResult:
        runs: dict[str, list[BenchmarkModelRun]] = {name: [] for name in models}
        names = list(models)
        for r in range(TABLE_ROUNDS):
            for name in (names if r % 2 == 0 else names[::-1]):
                runs[name].append(self.run_model(name, models[name], threads=spec.threads, warmup=spec.warmup,
                                                 runs=spec.runs, min_secs=spec.min_time_s))
        profiles = {name: self.run_model(name, content, threads=spec.threads, warmup=1, runs=min(spec.runs, 20),
                                         profile=True) for name, content in models.items()}
        self.profiles = {hashlib.sha256(c).hexdigest(): (name, profiles[name]) for name, c in models.items()}
        stats = {name: latency(runs[name], profiles[name].peak_memory_mb) for name in names}
        settings = {"threads": spec.threads, "warmup": spec.warmup, "runs": spec.runs,
                    "min_time_s": spec.min_time_s, "rounds": TABLE_ROUNDS,
                    "method": f"LiteRT benchmark_model on the device, one process per model and round, reference "
                              f"and candidate alternating ({TABLE_ROUNDS} rounds); init and first inference: "
                              "median over rounds; mean/std/min/max over every timed run; p50/p90/p99 over the "
                              "rounds' averages (benchmark_model prints no per-run times); peak memory from one "
                              "profiled run per model",
                    "flags": shlex.join(self.flags("MODEL.tflite", spec.threads, spec.warmup, spec.runs,
                                                   spec.min_time_s)),
                    "interpreter": "benchmark_model (LiteRT, the user's build)",
                    "measured_on": self.where.name}     # the device's facts: the record's `target` section
        return BenchResult(stats, settings)

    def sampler(self, baseline: bytes, candidate: bytes, example, *, threads: int, warmup: int,
                runs: int) -> "AdbSampler":
        return AdbSampler(self, baseline, candidate, threads, warmup, runs)

    def delegation(self, name: str, content: bytes) -> Delegation | str:
        digest = hashlib.sha256(content).hexdigest()
        known = getattr(self, "profiles", {}).get(digest)
        run = known[1] if known else self.run_model(name, content, threads=1, warmup=1, runs=5, profile=True)
        if not run.ops and not run.replacements:
            return "benchmark_model printed neither a delegation line nor an op profile"
        return from_run(run, self.spec.delegate)

    def outputs(self, name: str, content: bytes, arrays):
        raise TargetError("evaluate.on_target needs an ssh board; benchmark_model only times models",
                          field="evaluate.on_target")

    def close(self) -> None:
        if getattr(self, "serial", None):
            self._run(["-s", self.serial, "shell", f"rm -rf {DEVICE_DIR}"], what="cleaning up", timeout=60)


class AdbSampler:
    """A/B rounds on the device: one benchmark_model run per model per round, order
    alternating; the cell is the run's `Inference (avg)`."""

    def __init__(self, target: AdbTarget, baseline: bytes, candidate: bytes, threads: int, warmup: int, runs: int):
        self.target, self.models, self.threads, self.warmup = target, (baseline, candidate), threads, warmup
        self.runs = runs
        self.done = 0
        self.settings = {"method": "benchmark_model on the device, one process per model and round, order "
                                   "alternating per round; cell = the run's Inference (avg); ratio = median of "
                                   "per-round candidate/baseline; CI = bootstrap over rounds",
                         "rounds_first_look": target.spec.rounds, "runs_per_round": runs, "instances": 1,
                         "interpreter": "benchmark_model (LiteRT, the user's build)",
                         "measured_on": target.where.name}

    def rounds(self, count: int) -> np.ndarray:
        cells = np.empty((count, 2, 1))
        for r in range(count):
            order = (0, 1) if (self.done + r) % 2 == 0 else (1, 0)
            for m in order:
                run = self.target.run_model(("baseline", "candidate")[m], self.models[m], threads=self.threads,
                                            warmup=self.warmup, runs=self.runs)
                cells[r, m, 0] = run.inference_avg_us * 1e3
        self.done += count
        return cells


def latency(runs: list[BenchmarkModelRun], peak_mb: float | None) -> Latency:
    avgs = np.array([r.inference_avg_us for r in runs]) / 1e3
    counts = np.array([r.inference.count if r.inference else 1 for r in runs], dtype=np.float64)
    stds = np.array([r.inference.std if r.inference else 0.0 for r in runs]) / 1e3
    mean = float(np.average(avgs, weights=counts))
    std = float(np.sqrt(np.average(stds ** 2 + (avgs - mean) ** 2, weights=counts)))
    mins = [r.inference.min / 1e3 for r in runs if r.inference] or list(avgs)
    maxs = [r.inference.max / 1e3 for r in runs if r.inference] or list(avgs)
    p50, p90, p99 = np.percentile(avgs, [50, 90, 99])
    # First inference: its own field, or (older builds) the warmup Stat's first run.
    firsts = [r.first_us if r.first_us is not None else r.warmup.first for r in runs
              if r.first_us is not None or r.warmup is not None]
    return Latency(init_ms=float(np.median([r.init_us for r in runs])) / 1e3,
                   first_ms=float(np.median(firsts if firsts else [r.warmup_avg_us for r in runs])) / 1e3,
                   runs=int(counts.sum()),
                   mean_ms=mean, std_ms=std, min_ms=float(min(mins)), p50_ms=float(p50), p90_ms=float(p90),
                   p99_ms=float(p99), max_ms=float(max(maxs)),
                   warmup_ms=float(np.median([r.warmup_avg_us for r in runs])) / 1e3, peak_memory_mb=peak_mb)


def _client(adb: str, root: Path) -> str:
    if "/" in adb:
        path = Path(adb) if Path(adb).is_absolute() else root / adb
        if not path.is_file():
            raise TargetError(f"expected the adb client at {path}; not a file", field=f"{FIELD}.adb")
        return str(path)
    found = shutil.which(adb)
    if found is None:
        raise TargetError(f"the adb client `{adb}` is not on PATH", field=f"{FIELD}.adb",
                          hint="install Android's platform-tools (Debian: apt-get install adb) on the runner")
    return found


def _tail(text: str, lines: int = 4) -> str:
    kept = [line.strip() for line in text.strip().splitlines() if line.strip()]
    return " | ".join(kept[-lines:]) or "(no output)"

