"""Launchers for the stand-ins of tests/standin/ (adb, benchmark_model), run by this venv's
python, and a wrong-ABI binary made from a real ELF."""
from __future__ import annotations

import shutil
import sys
from pathlib import Path

STANDIN = Path(__file__).resolve().parent / "standin"


def launcher(directory: Path, name: str, script: str) -> Path:
    path = directory / name
    path.write_text(f"#!{sys.executable}\nimport runpy, sys\nsys.argv[0] = {str(STANDIN / script)!r}\n"
                    f"runpy.run_path({str(STANDIN / script)!r}, run_name='__main__')\n")
    path.chmod(0o755)
    return path


def wrong_abi_binary(directory: Path) -> Path:
    """/bin/true with its ELF e_machine set to AArch64 (0xB7): the kernel refuses to exec it here."""
    path = directory / "benchmark_model_arm64"
    data = bytearray(Path(shutil.which("true")).read_bytes())
    data[18:20] = (0xB7).to_bytes(2, "little")
    path.write_bytes(bytes(data))
    path.chmod(0o755)
    return path
