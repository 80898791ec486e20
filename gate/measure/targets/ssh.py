"""A Linux board over ssh: the system's OpenSSH client (ssh, scp) in a subprocess, one
multiplexed connection (ControlMaster) for the whole run, host keys always checked
against the configured known_hosts (StrictHostKeyChecking=yes, BatchMode: never a
prompt). The gate's own script (board_script.py) times and runs the models with the
board's ai-edge-litert; the statistics stay on the runner.

The private key comes from a file or an environment variable (written to a 0600 file in a
private temporary directory for the run, removed by close()). Its text is never put in a
message, a log or the report: errors name the setting, not the key.
"""
from __future__ import annotations

import hashlib
import json
import os
import shlex
import subprocess
import tempfile
from collections.abc import Mapping
from pathlib import Path

import numpy as np

from gate.config.schema import BenchmarkSpec
from gate.config.schema import SshTarget as SshSpec
from gate.errors import TargetCrash, TargetError
from gate.measure.bench import BenchResult, summarize
from gate.measure.targets.protocol import Where
from gate.measure.targets.delegation import Delegation

FIELD = "benchmark.target.ssh"
SCRIPT = Path(__file__).with_name("board_script.py")
SETTLE = 3          # untimed invokes per visit on the board (gate.measure.timing measures it locally)
PER_ROUND = 3       # timed invokes per A/B visit; the cell is the fastest


class SshTarget:
    def __init__(self, spec: SshSpec, root: Path):
        self.spec = spec
        self.local = Path(tempfile.mkdtemp(prefix="gate-ssh-"))
        os.chmod(self.local, 0o700)
        self.remote_dir: str | None = None
        self.master = False
        try:
            self._connect(root)
        except BaseException:
            self.close()
            raise

    def _connect(self, root: Path) -> None:
        spec = self.spec
        self.key = self._key(root)
        self.known_hosts = _path(root, spec.known_hosts)
        if not self.known_hosts.is_file():
            raise TargetError(f"expected a known_hosts file with the board's host key; {self.known_hosts} is not a "
                              "file", field=f"{FIELD}.known_hosts",
                              hint=f"ssh-keyscan -p {spec.port} {spec.host} > known_hosts on a trusted network, "
                                   "check the fingerprint, commit it")
        self.dest = f"{spec.user}@{spec.host}"
        self._ssh("true", what="connecting", master=True)
        self.master = True
        self.remote_dir = self._ssh("mktemp -d /tmp/model-gate.XXXXXX", what="creating a work directory").strip()
        self.script = f"{self.remote_dir}/board_script.py"
        self._copy_to(SCRIPT, self.script)
        self.pushed: dict[str, str] = {}
        facts = self._call({"mode": "facts"}, what="checking the board's Python and ai-edge-litert")
        self.where = Where("ssh", f"{facts['hostname']} ({facts['machine']}, {facts['cpu']}) over ssh "
                                  f"{spec.user}@{spec.host}:{spec.port}",
                           {**facts, "host": spec.host, "port": spec.port, "user": spec.user,
                            "python": spec.python, "tool": "gate board script + ai-edge-litert"})

    # -- OpenSSH -----------------------------------------------------------------------

    def _key(self, root: Path) -> Path:
        path = _path(root, self.spec.key)
        if path.is_file():
            return path
        text = os.environ.get(self.spec.key)
        if text:
            key = self.local / "key"
            key.touch(mode=0o600)
            key.write_text(text if text.endswith("\n") else text + "\n", encoding="utf-8")
            return key
        raise TargetError(f"expected a private key file or an environment variable named {self.spec.key!r}; "
                          "neither exists", field=f"{FIELD}.key",
                          hint="in GitHub Actions: a repository secret mapped to that variable (env:)")

    def options(self) -> list[str]:
        return ["-F", "/dev/null", "-i", str(self.key), "-o", "IdentitiesOnly=yes", "-o", "BatchMode=yes",
                "-o", "StrictHostKeyChecking=yes", "-o", f"UserKnownHostsFile={self.known_hosts}",
                "-o", "GlobalKnownHostsFile=/dev/null", "-o", f"ConnectTimeout={self.spec.connect_timeout_s:g}",
                "-o", "LogLevel=ERROR", "-o", "ControlMaster=auto", "-o", f"ControlPath={self.local}/cm",
                "-o", "ControlPersist=120"]

    def _ssh(self, command: str, *, what: str, master: bool = False, timeout: float | None = None) -> str:
        args = ["ssh", *self.options(), "-p", str(self.spec.port), self.dest, command]
        out = self._process(args, what=what, timeout=timeout)
        if out.returncode == 255:
            raise self._connection_error(out.stderr, what)
        if out.returncode != 0:
            raise self._remote_error(out.returncode, out.stdout + out.stderr, what)
        return out.stdout

    def _process(self, args: list[str], *, what: str, timeout: float | None = None) -> subprocess.CompletedProcess:
        try:
            return subprocess.run(args, capture_output=True, text=True, errors="replace", stdin=subprocess.DEVNULL,
                                  timeout=timeout or self.spec.timeout_s)
        except subprocess.TimeoutExpired:
            raise TargetError(f"{self.dest}:{self.spec.port} did not finish {what} within "
                              f"{timeout or self.spec.timeout_s:g} s", field=f"{FIELD}.timeout_s") from None
        except OSError as exc:
            raise TargetError(f"cannot run the OpenSSH client ({args[0]}): {exc.strerror or exc}", field=FIELD,
                              hint="install openssh-client on the runner") from None

    def _connection_error(self, stderr: str, what: str) -> TargetError:
        said = " | ".join(line.strip() for line in stderr.strip().splitlines()[-3:] if line.strip()) or "(no output)"
        said = said.replace(str(self.key), "<key>")
        board = f"{self.dest} port {self.spec.port}"
        if "host key" in said.lower() or "identification has changed" in said.lower():
            return TargetError(f"the host key of {board} is not the one in known_hosts (or not there): {said}",
                               field=f"{FIELD}.known_hosts",
                               hint="add the board's host key to the configured known_hosts after checking its "
                                    "fingerprint; the gate never accepts an unknown host key")
        if "permission denied" in said.lower():
            return TargetError(f"{board} refused the configured key while {what}: {said}", field=f"{FIELD}.key",
                               hint="put the public half in the board user's ~/.ssh/authorized_keys")
        return TargetError(f"cannot reach {board} while {what}: {said}", field=f"{FIELD}.host",
                           hint=f"is the board on, sshd listening on port {self.spec.port}, the runner on its "
                                f"network? (ConnectTimeout {self.spec.connect_timeout_s:g} s)")

    def _remote_error(self, code: int, text: str, what: str) -> TargetError:
        tail = " | ".join(line.strip() for line in text.strip().splitlines()[-3:] if line.strip()) or "(no output)"
        if "No module named" in text or (code == 127 and "not found" in text):
            return TargetError(f"the board's Python {self.spec.python} cannot run the gate's script: {tail}",
                               field=f"{FIELD}.python", hint="pip install ai-edge-litert numpy on the board, or "
                                                             "point python at a venv that has them")
        if code > 128:
            return TargetCrash(f"the run crashed on {self.dest} while {what} (exit {code}, signal {code - 128}): "
                               f"{tail}", field=FIELD)
        return TargetError(f"the board failed while {what} (exit {code}): {tail}", field=FIELD)

    def _copy_to(self, local: Path, remote: str) -> None:
        args = ["scp", "-q", *self.options(), "-P", str(self.spec.port), str(local), f"{self.dest}:{remote}"]
        out = self._process(args, what=f"copying {local.name}")
        if out.returncode != 0:
            raise self._connection_error(out.stderr, f"copying {local.name}")

    def _copy_from(self, remote: str, local: Path) -> None:
        args = ["scp", "-q", *self.options(), "-P", str(self.spec.port), f"{self.dest}:{remote}", str(local)]
        out = self._process(args, what="copying the outputs back")
        if out.returncode != 0:
            raise self._connection_error(out.stderr, "copying the outputs back")

    def _call(self, request: dict, *, what: str) -> object:
        name = f"request-{hashlib.sha256(json.dumps(request).encode()).hexdigest()[:12]}.json"
        local = self.local / name
        local.write_text(json.dumps(request), encoding="utf-8")
        self._copy_to(local, f"{self.remote_dir}/{name}")
        text = self._ssh(f"{shlex.quote(self.spec.python)} {shlex.quote(self.script)} "
                         f"{shlex.quote(self.remote_dir + '/' + name)}", what=what)
        try:
            return json.loads(text.strip().splitlines()[-1])["ok"]
        except (IndexError, KeyError, ValueError):
            raise TargetError(f"the board's answer while {what} could not be read: {text[-300:]!r}",
                              field=FIELD) from None

    def _model(self, content: bytes) -> str:
        digest = hashlib.sha256(content).hexdigest()[:16]
        if digest not in self.pushed:
            local = self.local / f"{digest}.tflite"
            local.write_bytes(content)
            self._copy_to(local, f"{self.remote_dir}/{digest}.tflite")
            self.pushed[digest] = f"{self.remote_dir}/{digest}.tflite"
        return self.pushed[digest]

    def _examples(self, contents: list[bytes], example: Mapping[str, np.ndarray]) -> str:
        arrays = {}
        for m, content in enumerate(contents):
            for name, a in signature_example(content, example).items():
                arrays[f"{m}/{name}"] = a
        local = self.local / f"example-{len(contents)}-{hashlib.sha256(b''.join(contents)).hexdigest()[:12]}.npz"
        np.savez(local, **arrays)
        remote = f"{self.remote_dir}/{local.name}"
        self._copy_to(local, remote)
        return remote

    # -- Target -------------------------------------------------------------------------

    def benchmark(self, models: dict[str, bytes], example: Mapping[str, np.ndarray],
                  spec: BenchmarkSpec) -> BenchResult:
        names = list(models)
        request = {"mode": "bench", "models": [self._model(models[n]) for n in names],
                   "example": self._examples([models[n] for n in names], example), "threads": spec.threads,
                   "warmup": spec.warmup, "runs": spec.runs, "min_time_s": spec.min_time_s, "settle": SETTLE}
        answer = self._call(request, what="benchmarking")
        stats = {n: summarize(np.array(a["times_ns"]), a["init_ns"] / 1e6, a["first_ns"] / 1e6)
                 for n, a in zip(names, answer)}
        settings = {"threads": spec.threads, "warmup": spec.warmup, "runs": len(answer[0]["times_ns"]),
                    "min_time_s": spec.min_time_s, "settle_invokes": SETTLE, "invokes_per_visit": 5,
                    "method": f"the gate's board script over ssh: interleaved visits, order alternating per round; "
                              f"each visit {SETTLE} untimed invoke(s), then up to 5 timed invoke() wall times",
                    "interpreter": f"ai_edge_litert.interpreter.Interpreter {self.where.facts.get('ai_edge_litert')} "
                                   "(on the board)",
                    "measured_on": self.where.name, "cpu": self.where.facts.get("cpu"),
                    "cpu_count": self.where.facts.get("cpu_count"), "machine": self.where.facts.get("machine")}
        return BenchResult(stats, settings)

    def sampler(self, baseline: bytes, candidate: bytes, example, *, threads: int, warmup: int,
                runs: int) -> "SshSampler":
        return SshSampler(self, baseline, candidate, example, threads, warmup)

    def delegation(self, name: str, content: bytes) -> Delegation | str:
        """LiteRT's own tool on the board (`python -m ai_edge_litert.tools.benchmark_litert_model`,
        the wheel's litert-benchmark) with the configured accelerator; its result_json says
        which accelerators ran and whether the model was fully accelerated."""
        accelerator = self.spec.accelerator
        if accelerator == "cpu":
            return ("the board runs the CPU interpreter (benchmark.target.ssh.accelerator: cpu): set gpu or npu to "
                    "measure delegation")
        from gate.measure.litert import make_interpreter
        from gate.measure.targets.delegation import from_result_json

        total = len(make_interpreter(content, threads=1, where=f"{name} model")._get_ops_details())
        remote = f"{self.remote_dir}/{name}-result.json"
        command = (f"{shlex.quote(self.spec.python)} -m ai_edge_litert.tools.benchmark_litert_model "
                   f"--model={shlex.quote(self._model(content))} --num_runs=5 --num_threads=1 "
                   f"--use_{accelerator} --result_json={shlex.quote(remote)}")
        try:
            self._ssh(command, what=f"running litert-benchmark --use_{accelerator} on the {name} model")
        except TargetError as err:
            if err.field in (f"{FIELD}.host", f"{FIELD}.key", f"{FIELD}.known_hosts"):
                raise
            return f"litert-benchmark --use_{accelerator} failed on the board: {err.message}"
        local = self.local / f"{name}-result.json"
        self._copy_from(remote, local)
        return from_result_json(json.loads(local.read_text(encoding="utf-8")), accelerator, total)

    def outputs(self, name: str, content: bytes, arrays: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        feed = signature_inputs(content, arrays)
        local = self.local / f"inputs-{name}.npz"
        np.savez(local, **feed)
        remote_in = f"{self.remote_dir}/{local.name}"
        self._copy_to(local, remote_in)
        remote_out = f"{self.remote_dir}/outputs-{name}.npz"
        self._call({"mode": "run", "model": self._model(content), "inputs": remote_in, "outputs": remote_out,
                    "threads": 1}, what=f"running the {name} model over the eval data")
        back = self.local / f"outputs-{name}.npz"
        self._copy_from(remote_out, back)
        with np.load(back) as data:
            return {k: data[k] for k in data.files}

    def close(self) -> None:
        try:
            if self.master:
                if self.remote_dir:
                    self._process(["ssh", *self.options(), "-p", str(self.spec.port), self.dest,
                                   f"rm -rf {shlex.quote(self.remote_dir)}"], what="cleaning up", timeout=60)
                self._process(["ssh", *self.options(), "-p", str(self.spec.port), "-O", "exit", self.dest],
                              what="closing the connection", timeout=30)
        finally:
            import shutil

            shutil.rmtree(self.local, ignore_errors=True)


class SshSampler:
    """A/B rounds on the board: each call of `rounds` runs the board script's ab mode (fresh
    interpreter instances, visited in random order per round)."""

    def __init__(self, target: SshTarget, baseline: bytes, candidate: bytes, example, threads: int, warmup: int):
        self.target = target
        self.request = {"mode": "ab", "models": [target._model(baseline), target._model(candidate)],
                        "example": target._examples([baseline, candidate], example), "threads": threads,
                        "warmup": max(warmup, 2), "instances": target.spec.instances, "settle": SETTLE,
                        "per_round": PER_ROUND, "seed": 0}
        self.calls = 0
        self.settings = {"method": "the gate's board script over ssh: instances interleaved in random order per "
                                   f"round; a visit runs {SETTLE} untimed invokes, then cell = fastest of "
                                   f"{PER_ROUND} timed invokes; round figure = median over instances; ratio = median "
                                   "of per-round candidate/baseline; CI = bootstrap over rounds + instance placement "
                                   "term (the same statistics as a local run)",
                         "instances": target.spec.instances, "threads": threads,
                         "interpreter": f"ai_edge_litert {target.where.facts.get('ai_edge_litert')} (on the board)",
                         "measured_on": target.where.name}

    def rounds(self, count: int) -> np.ndarray:
        request = {**self.request, "rounds": count, "seed": self.calls}
        self.calls += 1
        return np.asarray(self.target._call(request, what="timing the A/B rounds"), dtype=np.float64)


def signature_example(content: bytes, example: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    """One example keyed by the model's signature input names, shaped as
    gate.measure.litert.interpreter_with_input feeds it (quantized on the board)."""
    from gate.measure.litert import make_interpreter, match_inputs, signature_io

    interp = make_interpreter(content, threads=1, where="model")
    ins, _ = signature_io(interp)
    if not isinstance(example, Mapping):
        example = {next(iter(ins)): example}
    mapping = match_inputs(list(ins), example, where="model")
    out = {}
    for name, detail in ins.items():
        a, shape = np.asarray(example[mapping[name]]), tuple(int(d) for d in detail["shape"])
        out[name] = a.reshape(shape) if a.size == int(np.prod(shape)) else a[:1]
    return out


def signature_inputs(content: bytes, arrays: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Every eval example keyed by the model's signature input names."""
    from gate.measure.litert import make_interpreter, match_inputs, signature_io

    interp = make_interpreter(content, threads=1, where="model")
    ins, _ = signature_io(interp)
    mapping = match_inputs(list(ins), arrays, where="model")
    return {name: np.asarray(arrays[key]) for name, key in mapping.items()}


def _path(root: Path, value: str) -> Path:
    path = Path(value).expanduser()
    return path if path.is_absolute() else root / path
