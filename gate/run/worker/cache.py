"""A content-addressed cache of what a run computed and need not compute again.

An entry is a directory named by its key (the sha256 of everything that decides the
result: model, data, resolved policy, evaluation settings, tool versions), holding a
`record.json` (plain JSON data), the named binary files (the .tflite models) and a
`manifest.json` with the sha256 and size of each. Entries are untrusted data: a read
checks the manifest, every file's hash and the JSON, and any mismatch is a miss with a
note (never an error, never code: nothing is unpickled or imported). Writes go to a temp
directory renamed into place, so two concurrent runs never see half an entry; eviction
(oldest use first, down to `max_bytes`) runs under a lock file. Latency is never cached.
"""
from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import shutil
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

from gate.run.cachekey import FORMAT, cache_key  # noqa: F401 - the key is shared with gate.fleet.changed

MANIFEST, RECORD = "manifest.json", "record.json"
DEFAULT_DIR = ".gate-cache"
DEFAULT_MAX_BYTES = 2 * 1024 ** 3
_NAME_OK = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-")
MAX_RECORD_BYTES = 64 * 1024 * 1024


@dataclass(frozen=True)
class Entry:
    key: str
    record: dict
    files: dict[str, bytes] = field(repr=False)


def _safe_name(name: str) -> bool:
    return bool(name) and set(name) <= _NAME_OK and not name.startswith(".") and name not in (MANIFEST, RECORD)


class Cache:
    def __init__(self, root: Path, max_bytes: int = DEFAULT_MAX_BYTES):
        self.root = Path(root)
        self.max_bytes = max_bytes
        self.notes: list[str] = []

    # -- read --------------------------------------------------------------------------------

    def get(self, key: str) -> Entry | None:
        """The entry for `key`, validated; None (with a note when it was damaged) otherwise."""
        path = self.root / key
        if not path.is_dir() or path.is_symlink():
            return None
        try:
            entry = self._read(key, path)
        except (OSError, ValueError, KeyError, TypeError) as exc:
            self.notes.append(f"cache entry {key[:12]} ignored: {exc}")
            shutil.rmtree(path, ignore_errors=True)
            return None
        with contextlib.suppress(OSError):
            os.utime(path)   # last use, for eviction
        return entry

    def _read(self, key: str, path: Path) -> Entry:
        manifest = json.loads((path / MANIFEST).read_text(encoding="utf-8"))
        if not isinstance(manifest, dict) or manifest.get("format") != FORMAT or manifest.get("key") != key:
            raise ValueError("manifest does not match (another format or key)")
        listed = manifest["files"]
        if not isinstance(listed, dict) or RECORD not in listed:
            raise ValueError("manifest lists no record")
        present = {p.name for p in path.iterdir()} - {MANIFEST}
        if present != set(listed):
            raise ValueError(f"files {sorted(present ^ set(listed))} differ from the manifest")
        contents = {}
        for name, meta in listed.items():
            if name != RECORD and not _safe_name(name):
                raise ValueError(f"bad file name {name!r}")
            file = path / name
            if file.is_symlink() or not file.is_file() or file.stat().st_size != meta["bytes"]:
                raise ValueError(f"{name} is not the file the manifest lists")
            if name == RECORD and meta["bytes"] > MAX_RECORD_BYTES:
                raise ValueError("record is too large")
            data = file.read_bytes()
            if hashlib.sha256(data).hexdigest() != meta["sha256"]:
                raise ValueError(f"{name} does not match its sha256 (corrupted)")
            contents[name] = data
        record = json.loads(contents.pop(RECORD).decode("utf-8"))
        if not isinstance(record, dict):
            raise ValueError("record is not a JSON object")
        return Entry(key, record, contents)

    # -- write -------------------------------------------------------------------------------

    def put(self, key: str, record: dict, files: dict[str, bytes]) -> None:
        """Store an entry (atomically: a temp directory renamed into place); an entry another
        run wrote first is kept. Then evict down to max_bytes."""
        for name in files:
            if not _safe_name(name):
                raise ValueError(f"cache file name {name!r} is not allowed")
        self.root.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".tmp-{key[:12]}-", dir=self.root))
        try:
            os.chmod(tmp, 0o755)     # mkdtemp's 0700 would hide the entry from actions/cache's user
            blobs = {RECORD: json.dumps(record, sort_keys=True).encode("utf-8"), **files}
            for name, data in blobs.items():
                (tmp / name).write_bytes(data)
            manifest = {"format": FORMAT, "key": key, "created": time.time(),
                        "files": {n: {"sha256": hashlib.sha256(d).hexdigest(), "bytes": len(d)}
                                  for n, d in blobs.items()}}
            (tmp / MANIFEST).write_text(json.dumps(manifest), encoding="utf-8")
            try:
                os.rename(tmp, self.root / key)
            except OSError:          # another run stored it first: theirs is as good
                shutil.rmtree(tmp, ignore_errors=True)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        self.evict()

    # -- size bound --------------------------------------------------------------------------

    @contextlib.contextmanager
    def _lock(self) -> Iterator[None]:
        with open(self.root / ".lock", "a+") as f:
            fcntl.flock(f, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(f, fcntl.LOCK_UN)

    def entries(self) -> list[tuple[float, int, Path]]:
        """(last use, bytes, path) of every complete entry."""
        out = []
        for path in self.root.iterdir() if self.root.is_dir() else ():
            if path.name.startswith(".") or not path.is_dir() or path.is_symlink():
                continue
            try:
                size = sum(p.stat().st_size for p in path.iterdir())
                out.append((path.stat().st_mtime, size, path))
            except OSError:
                continue       # being removed by another run
        return sorted(out)

    def evict(self) -> list[str]:
        """Remove the least recently used entries until the cache is within max_bytes."""
        removed = []
        with self._lock():
            entries = self.entries()
            total = sum(size for _, size, _ in entries)
            for _, size, path in entries:
                if total <= self.max_bytes:
                    break
                shutil.rmtree(path, ignore_errors=True)
                total -= size
                removed.append(path.name)
            for stale in self.root.glob(".tmp-*"):   # left by a run that was killed mid-write
                with contextlib.suppress(OSError):
                    if time.time() - stale.stat().st_mtime > 3600:
                        shutil.rmtree(stale, ignore_errors=True)
        return removed
