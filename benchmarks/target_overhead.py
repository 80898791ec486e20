"""What a remote benchmark target costs over the local one, on the loopback.

Starts an OpenSSH server on 127.0.0.1 (as tests/test_targets_ssh.py does: needs root and
Debian's openssh-server), then times the same work twice with the same two models (the
digits CNN float32 and dynamic-range, untrained: latency needs no training):

- local: gate.measure.targets.local (the in-process benchmark) + abtest.compare_latency;
- ssh: gate.measure.targets.ssh against 127.0.0.1 (this venv's python as the board's):
  connect (ControlMaster, copy the script, facts), the measurements table, the A/B test
  through compare_sampled with the same rounds count, close.

The board is this machine, so the difference is the transport and process start-up, not
the hardware. Prints one table; `--repeats` runs each side that many times.

    sudo .venv/bin/python benchmarks/target_overhead.py [--repeats 3] [--rounds 20]
"""
from __future__ import annotations

import argparse
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np


def models() -> tuple[bytes, bytes, dict]:
    from gate.config.schema import ConvertSpec
    from gate.measure.convert import to_tflite
    from gate.measure.tfenv import keras

    k = keras()
    k.utils.set_random_seed(0)
    model = k.Sequential([k.layers.Input(shape=(8, 8, 1), name="image"), k.layers.Conv2D(8, 3, activation="relu"),
                          k.layers.Flatten(), k.layers.Dense(10, activation="softmax")])
    example = {"image": np.random.default_rng(0).random((1, 8, 8, 1), dtype=np.float32)}
    return (to_tflite(model, ConvertSpec()).content,
            to_tflite(model, ConvertSpec(quantization="dynamic")).content, example)


def sshd(d: Path) -> tuple[subprocess.Popen, int]:
    for name in ("host_key", "user_key"):
        subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "", "-f", str(d / name)], check=True)
    (d / "authorized_keys").write_text((d / "user_key.pub").read_text())
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    (d / "sshd_config").write_text(
        f"Port {port}\nListenAddress 127.0.0.1\nHostKey {d / 'host_key'}\nPidFile {d / 'sshd.pid'}\n"
        f"AuthorizedKeysFile {d / 'authorized_keys'}\nPasswordAuthentication no\nUsePAM no\nStrictModes no\n"
        "PermitRootLogin prohibit-password\nSubsystem sftp /usr/lib/openssh/sftp-server\n")
    Path("/run/sshd").mkdir(exist_ok=True)
    proc = subprocess.Popen([shutil.which("sshd") or "/usr/sbin/sshd", "-D", "-f", str(d / "sshd_config"),
                             "-E", str(d / "sshd.log")])
    pub = (d / "host_key.pub").read_text().split()
    (d / "known_hosts").write_text(f"[127.0.0.1]:{port} {pub[0]} {pub[1]}\n")
    for _ in range(100):
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            break
        except OSError:
            time.sleep(0.05)
    return proc, port


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--rounds", type=int, default=20)
    args = ap.parse_args()
    if os.geteuid() != 0:
        sys.exit("needs root (sshd)")
    from gate.config.schema import BenchmarkSpec, SshTarget
    from gate.measure.targets.local import LocalTarget
    from gate.measure.targets.ssh import SshTarget as Ssh
    from gate.verdict.abtest import compare_latency, compare_sampled

    ref, cand, example = models()
    spec = BenchmarkSpec(threads=1, warmup=10, runs=100)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        d = Path(tmp)
        proc, port = sshd(d)
        try:
            board = SshTarget(host="127.0.0.1", port=port, user="root", key=str(d / "user_key"),
                              known_hosts=str(d / "known_hosts"), python=sys.executable, instances=5,
                              rounds=args.rounds)
            for r in range(args.repeats):
                t0 = time.perf_counter()
                local = LocalTarget()
                t1 = time.perf_counter()
                table = local.benchmark({"reference": ref, "candidate": cand}, example, spec)
                t2 = time.perf_counter()
                v = compare_latency(ref, cand, example, max_ratio=2.0, rounds=args.rounds, seed=r)
                t3 = time.perf_counter()
                rows.append(("local", t1 - t0, t2 - t1, t3 - t2, 0.0, v.ratio, v.ci_low, v.ci_high, v.rounds,
                             table.stats["candidate"].p50_ms / table.stats["reference"].p50_ms))
                t0 = time.perf_counter()
                target = Ssh(board, d)
                t1 = time.perf_counter()
                table = target.benchmark({"reference": ref, "candidate": cand}, example, spec)
                t2 = time.perf_counter()
                v = compare_sampled(target.sampler(ref, cand, example, threads=1, warmup=10, runs=100),
                                    max_ratio=2.0, rounds=args.rounds, seed=r)
                t3 = time.perf_counter()
                target.close()
                t4 = time.perf_counter()
                rows.append(("ssh", t1 - t0, t2 - t1, t3 - t2, t4 - t3, v.ratio, v.ci_low, v.ci_high, v.rounds,
                             table.stats["candidate"].p50_ms / table.stats["reference"].p50_ms))
        finally:
            proc.terminate()
            proc.wait(timeout=10)
    print("| target | connect s | table s | A/B s | close s | total s | A/B ratio (95 % CI) | rounds | table p50 ratio |")
    print("|---|---|---|---|---|---|---|---|---|")
    for kind, c, t, ab, cl, ratio, lo, hi, n, tr in rows:
        print(f"| {kind} | {c:.2f} | {t:.2f} | {ab:.2f} | {cl:.2f} | {c + t + ab + cl:.2f} | {ratio:.3f} "
              f"({lo:.3f}-{hi:.3f}) | {n} | {tr:.3f} |")
    for kind in ("local", "ssh"):
        total = [r[1] + r[2] + r[3] + r[4] for r in rows if r[0] == kind]
        print(f"{kind}: median total {np.median(total):.2f} s over {len(total)} repeat(s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
