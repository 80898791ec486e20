"""A stand-in for Android's `adb` client: one emulated device whose /data/local/tmp lives
under $STANDIN_ADB_ROOT. Commands the gate uses: `devices`, `-s SERIAL push LOCAL REMOTE`,
`-s SERIAL shell COMMAND` (run by bash with device paths mapped and `getprop` defined).
$STANDIN_ADB_DEVICES: "SERIAL:STATE,..." (empty: no device). Every call is appended to
$STANDIN_ADB_ROOT/adb.log. The tests write a launcher with this venv's python."""
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

ROOT = Path(os.environ["STANDIN_ADB_ROOT"])
PROPS = {"ro.product.model": "Pixel 7", "ro.product.cpu.abi": "arm64-v8a", "ro.build.version.release": "14"}


def devices() -> dict:
    spec = os.environ.get("STANDIN_ADB_DEVICES", "")
    return dict(item.split(":", 1) for item in spec.split(",") if item)


def device_path(text: str) -> str:
    return text.replace("/data/local/tmp", str(ROOT / "data/local/tmp"))


def main(argv: list[str]) -> int:
    with open(ROOT / "adb.log", "a", encoding="utf-8") as log:
        log.write(repr(argv) + "\n")
    if argv == ["devices"]:
        print("List of devices attached")
        for serial, state in devices().items():
            print(f"{serial}\t{state}")
        print()
        return 0
    if len(argv) < 3 or argv[0] != "-s":
        print(f"adb: usage: unknown command {' '.join(argv)}", file=sys.stderr)
        return 1
    serial, command, rest = argv[1], argv[2], argv[3:]
    if devices().get(serial) != "device":
        print(f"adb: device '{serial}' not found", file=sys.stderr)
        return 1
    if command == "push":
        local, remote = rest
        target = Path(device_path(remote))
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(local, target)
        print(f"{local}: 1 file pushed, 0 skipped.")
        return 0
    if command == "shell":
        props = " ".join(f"{k}) echo '{v}';;" for k, v in PROPS.items())
        script = f"getprop() {{ case $1 in {props} *) echo;; esac; }}\n" + device_path(" ".join(rest))
        out = subprocess.run(["bash", "-c", script], env={**os.environ, "STANDIN_DEVICE_ROOT": str(ROOT)})
        if out.returncode < 0:
            print("Segmentation fault" if -out.returncode == signal.SIGSEGV else f"signal {-out.returncode}",
                  file=sys.stderr)
            return 128 - out.returncode
        return out.returncode
    print(f"adb: unknown command {command}", file=sys.stderr)
    return 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
