"""benchmark.target.ssh against a real OpenSSH server started here on 127.0.0.1 (Debian's
openssh-server; sshd runs as root with its own config, host key and authorized key in a
temporary directory). The "board" Python is this venv's."""
from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

from gate.config.schema import SshTarget as SshSpec
from gate.errors import TargetError
from tests.conftest import run_check, write_config

SSHD = shutil.which("sshd") or "/usr/sbin/sshd"
pytestmark = pytest.mark.skipif(not (Path(SSHD).exists() and shutil.which("ssh") and os.geteuid() == 0),
                                reason="needs openssh-server and root (.ci/run installs it)")


@dataclass(frozen=True)
class Board:
    dir: Path
    port: int
    key: Path
    known_hosts: Path
    log: Path
    other_key: Path          # a key the board does not know


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def keygen(path: Path) -> None:
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "", "-f", str(path)], check=True)


@pytest.fixture(scope="module")
def board(tmp_path_factory):
    d = tmp_path_factory.mktemp("board")
    for name in ("host_key", "user_key", "other_key"):
        keygen(d / name)
    (d / "authorized_keys").write_text((d / "user_key.pub").read_text())
    port = free_port()
    config = d / "sshd_config"
    config.write_text(f"""Port {port}
ListenAddress 127.0.0.1
HostKey {d / 'host_key'}
PidFile {d / 'sshd.pid'}
AuthorizedKeysFile {d / 'authorized_keys'}
PasswordAuthentication no
KbdInteractiveAuthentication no
PubkeyAuthentication yes
PermitRootLogin prohibit-password
UsePAM no
StrictModes no
MaxStartups 100
MaxSessions 100
Subsystem sftp /usr/lib/openssh/sftp-server
LogLevel VERBOSE
""")
    Path("/run/sshd").mkdir(exist_ok=True)
    log = d / "sshd.log"
    proc = subprocess.Popen([SSHD, "-D", "-f", str(config), "-E", str(log)])
    host_pub = (d / "host_key.pub").read_text().split()
    known = d / "known_hosts"
    known.write_text(f"[127.0.0.1]:{port} {host_pub[0]} {host_pub[1]}\n")
    for _ in range(100):
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            break
        except OSError:
            time.sleep(0.05)
    yield Board(d, port, d / "user_key", known, log, d / "other_key")
    proc.terminate()
    proc.wait(timeout=10)


def spec(board: Board, **over) -> SshSpec:
    values = {"host": "127.0.0.1", "port": board.port, "user": "root", "key": str(board.key),
              "known_hosts": str(board.known_hosts), "python": sys.executable, "connect_timeout_s": 3,
              "rounds": 6, "instances": 2}
    values.update(over)
    return SshSpec(**values)


def open_ssh(board: Board, tmp_path: Path, **over):
    from gate.measure.targets.ssh import SshTarget

    return SshTarget(spec(board, **over), tmp_path)


def test_wrong_key_is_named(board, tmp_path):
    with pytest.raises(TargetError) as err:
        open_ssh(board, tmp_path, key=str(board.other_key))
    assert err.value.field == "benchmark.target.ssh.key" and "Permission denied" in err.value.message
    assert "PRIVATE KEY" not in err.value.render()


def test_unknown_host_key_is_refused(board, tmp_path):
    other = tmp_path / "known_hosts"
    pub = (board.other_key.with_suffix(".pub")).read_text().split()
    other.write_text(f"[127.0.0.1]:{board.port} {pub[0]} {pub[1]}\n")     # a different key for that host
    with pytest.raises(TargetError) as err:
        open_ssh(board, tmp_path, known_hosts=str(other))
    assert err.value.field == "benchmark.target.ssh.known_hosts"
    empty = tmp_path / "empty_known_hosts"
    empty.write_text("")
    with pytest.raises(TargetError) as err:
        open_ssh(board, tmp_path, known_hosts=str(empty))
    assert err.value.field == "benchmark.target.ssh.known_hosts"
    assert "Host key verification failed" in err.value.message


def test_host_that_does_not_answer(board, tmp_path):
    start = time.perf_counter()
    with pytest.raises(TargetError) as err:
        open_ssh(board, tmp_path, port=free_port(), connect_timeout_s=1)
    assert err.value.field == "benchmark.target.ssh.host" and "cannot reach root@127.0.0.1" in err.value.message
    assert time.perf_counter() - start < 10
    silent = socket.socket()          # accepts TCP connections, never says a word (a hung board)
    silent.bind(("127.0.0.1", 0))
    silent.listen(5)
    start = time.perf_counter()
    with pytest.raises(TargetError) as err:
        open_ssh(board, tmp_path, port=silent.getsockname()[1], connect_timeout_s=1)
    silent.close()
    assert err.value.field == "benchmark.target.ssh.host" and "timed out" in err.value.message
    assert time.perf_counter() - start < 10


def test_key_from_environment_variable_never_shown(board, tmp_path, monkeypatch):
    monkeypatch.setenv("BOARD_SSH_KEY", board.key.read_text())
    target = open_ssh(board, tmp_path, key="BOARD_SSH_KEY")
    try:
        assert target.where.kind == "ssh" and "over ssh root@127.0.0.1" in target.where.name
        local = target.local
    finally:
        target.close()
    assert not local.exists()      # the key's temporary file went with it


@pytest.fixture(scope="module")
def gate_run(board, tiny, tmp_path_factory):
    """One gate check on the board with evaluate.on_target, the key from an env variable."""
    d = tmp_path_factory.mktemp("ssh-run")
    before = len(board.log.read_text().splitlines()) if board.log.exists() else 0
    os.environ["BOARD_SSH_KEY"] = board.key.read_text()
    try:
        cfg = write_config(d, tiny, policy="dynamic-range", benchmark={
            "threads": 1, "warmup": 2, "runs": 20,
            "target": {"ssh": {"host": "127.0.0.1", "port": board.port, "user": "root", "key": "BOARD_SSH_KEY",
                               "known_hosts": str(board.known_hosts), "python": sys.executable, "rounds": 6,
                               "instances": 2}}},
            evaluate={"on_target": True},
            thresholds={"accuracy": {"max_drop": 0.05}, "latency": {"max_ratio": 5, "time_budget_s": 20}})
        result, report = run_check(d, cfg, "--no-baseline")
    finally:
        del os.environ["BOARD_SSH_KEY"]
    return d, result, report, board.log.read_text().splitlines()[before:]


def test_gate_check_on_board_says_where(gate_run, board):
    d, result, report, sshd_log = gate_run
    assert result.exit_code == 0, result.output
    name = report["target"]["name"]
    assert report["target"]["kind"] == "ssh" and "over ssh root@127.0.0.1:" in name
    assert report["benchmark"]["settings"]["measured_on"] == name
    latency = next(c for c in report["checks"] if c["name"] == "latency.max_ratio")
    assert f"measured on {name}" in latency["detail"]
    on = report["on_target"]
    assert on["measured_on"] == name and on["candidate"]["examples"] == 200
    from gate.report.model import Report

    typed = Report.model_validate(report)       # on_target is a typed section: Evaluation per model
    assert typed.on_target.reference.examples == 200 and typed.target.kind == "ssh"
    # the board computed the same outputs as the runner (same LiteRT here)
    assert on["candidate"]["accuracy"]["top1"] == report["candidate"]["evaluation"]["accuracy"]["top1"]
    md = (d / "out" / "report.md").read_text()
    from gate.report.render import md as escape

    assert f"Latency measured on **{escape(name)}**" in md and "Accuracy (top1) on" in md
    accepted = [line for line in sshd_log if "Accepted publickey for root from 127.0.0.1" in line]
    assert len(accepted) >= 1


def test_key_never_in_report_or_output(gate_run, board):
    d, result, report, _ = gate_run
    key_text = board.key.read_text()
    body = "".join(key_text.splitlines()[1:-1])
    for text in (json.dumps(report), (d / "out" / "report.md").read_text(), result.output):
        assert "PRIVATE KEY" not in text and body[:40] not in text


def test_board_unreachable_is_an_error_not_a_pass(board, tiny, tmp_path):
    cfg = write_config(tmp_path, tiny, policy="dynamic-range", benchmark={
        "threads": 1, "warmup": 2, "runs": 20,
        "target": {"ssh": {"host": "127.0.0.1", "port": free_port(), "user": "root", "key": str(board.key),
                           "known_hosts": str(board.known_hosts), "python": sys.executable,
                           "connect_timeout_s": 1}}},
        thresholds={"latency": {"max_ratio": 5}})
    result, report = run_check(tmp_path, cfg, "--no-baseline")
    assert result.exit_code == 2 and report["status"] == "error"
    assert report["error"]["field"] == "benchmark.target.ssh.host"
    assert report.get("candidate") is None and not report["checks"]


def test_delegation_from_litert_benchmark_result_json():
    from gate.measure.targets.delegation import from_result_json

    gpu = from_result_json({"accelerators": ["GPU"], "fully_accelerated": True}, "gpu", 12)
    assert gpu.full and gpu.share == 1.0
    partial = from_result_json({"accelerators": ["GPU", "CPU"], "fully_accelerated": False}, "gpu", 12)
    assert not partial.full and partial.share is None and "does not say" in partial.summary()
    none = from_result_json({"accelerators": ["CPU"], "fully_accelerated": True}, "gpu", 12)
    assert not none.full and none.share == 0.0


def test_board_delegation_runs_litert_benchmark(board, tmp_path, tiny):
    """This machine has no GPU: litert-benchmark --use_gpu fails on the "board", and the
    delegation is not measured (its reason), never reported as delegated."""
    from gate.config.schema import ConvertSpec
    from gate.measure.convert import to_tflite
    from gate.measure.model import load_model

    content = to_tflite(load_model(tiny.keras).keras, ConvertSpec()).content
    target = open_ssh(board, tmp_path, accelerator="gpu")
    try:
        found = target.delegation("candidate", content)
    finally:
        target.close()
    assert isinstance(found, str) and "litert-benchmark --use_gpu failed on the board" in found
