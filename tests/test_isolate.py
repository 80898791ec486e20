"""gate.run.parent.isolate: the worker does not outlive the gate process."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time

import pytest

PARENT = textwrap.dedent("""
    import subprocess, sys
    from gate.config.schema import LimitsSpec
    from gate.run.parent.isolate import _limit
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"], preexec_fn=_limit(LimitsSpec()))
    print(child.pid, flush=True)
    child.wait()
""")


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:   # a zombie is gone for our purposes
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split()[2] != "Z"
    except OSError:
        return False


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="prctl(PR_SET_PDEATHSIG) is Linux's")
def test_the_worker_dies_with_a_killed_gate_process():
    """Seen while benchmarking: a `gate check` killed with a signal left its worker measuring
    for minutes as an orphan. With PR_SET_PDEATHSIG the kernel kills it with the parent."""
    parent = subprocess.Popen([sys.executable, "-c", PARENT], stdout=subprocess.PIPE, text=True)
    child = int(parent.stdout.readline())
    assert _alive(child)
    parent.send_signal(signal.SIGKILL)
    parent.wait()
    deadline = time.time() + 10
    while _alive(child) and time.time() < deadline:
        time.sleep(0.05)
    assert not _alive(child)
