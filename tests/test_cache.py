"""gate.run.worker.cache: entries round-trip, damaged entries are misses with a note, concurrent
writers never leave half an entry, eviction keeps the most recently used."""
from __future__ import annotations

import json
import os
import time

import pytest

from gate.run.worker.cache import MANIFEST, RECORD, Cache, cache_key

RECORD_DATA = {"evaluation": {"accuracy": {"top1": 0.98}}, "notes": ["n"]}
FILES = {"candidate.tflite": b"TFL3" + bytes(range(256)) * 4, "reference.tflite": b"\x00" * 100}


def test_hit_returns_what_was_put(tmp_path):
    cache = Cache(tmp_path)
    key = cache_key({"model": "a"})
    assert cache.get(key) is None
    cache.put(key, RECORD_DATA, FILES)
    entry = cache.get(key)
    assert entry.record == RECORD_DATA and entry.files == FILES and cache.notes == []


def test_the_key_changes_with_every_part():
    base = {"model": "m", "train": "t", "eval": "e", "policy": {"steps": []}, "versions": {"tensorflow": "2.21.0"}}
    keys = {cache_key(base)}
    for part, other in (("model", "m2"), ("train", "t2"), ("eval", "e2"), ("policy", {"steps": [1]}),
                        ("versions", {"tensorflow": "2.22.0"})):
        keys.add(cache_key({**base, part: other}))
    assert len(keys) == 6
    assert cache_key(dict(reversed(list(base.items())))) == cache_key(base)   # order does not matter


@pytest.mark.parametrize("damage", ["flip a byte", "truncate", "drop a file", "extra file", "bad json",
                                    "manifest of another key", "symlinked file"])
def test_a_damaged_entry_is_a_miss_with_a_note_and_is_removed(tmp_path, damage):
    cache = Cache(tmp_path)
    key = cache_key({"model": damage})
    cache.put(key, RECORD_DATA, FILES)
    entry = tmp_path / key
    target = entry / "candidate.tflite"
    if damage == "flip a byte":
        data = bytearray(target.read_bytes())
        data[10] ^= 0xFF
        target.write_bytes(bytes(data))
    elif damage == "truncate":
        target.write_bytes(target.read_bytes()[:-1])
    elif damage == "drop a file":
        target.unlink()
    elif damage == "extra file":
        (entry / "evil.py").write_text("import os")
    elif damage == "bad json":
        record = entry / RECORD
        record.write_text("{not json")
        manifest = json.loads((entry / MANIFEST).read_text())
        import hashlib
        manifest["files"][RECORD] = {"sha256": hashlib.sha256(b"{not json").hexdigest(), "bytes": 9}
        (entry / MANIFEST).write_text(json.dumps(manifest))
    elif damage == "manifest of another key":
        manifest = json.loads((entry / MANIFEST).read_text())
        manifest["key"] = "0" * 64
        (entry / MANIFEST).write_text(json.dumps(manifest))
    elif damage == "symlinked file":
        outside = tmp_path / "outside.tflite"
        outside.write_bytes(target.read_bytes())
        target.unlink()
        target.symlink_to(outside)
    assert cache.get(key) is None
    assert len(cache.notes) == 1 and key[:12] in cache.notes[0]
    assert not entry.exists()


def test_file_names_cannot_leave_the_entry(tmp_path):
    with pytest.raises(ValueError):
        Cache(tmp_path).put(cache_key({}), {}, {"../escape": b"x"})


WRITER = """
import os, sys
from gate.run.worker.cache import Cache
cache = Cache(sys.argv[1])
for i in range(int(sys.argv[3])):
    cache.put(sys.argv[2], {"writer": os.getpid(), "i": i}, {"candidate.tflite": os.urandom(20_000)})
    entry = cache.get(sys.argv[2])
    assert entry is not None and len(entry.files["candidate.tflite"]) == 20_000, entry
"""


def test_concurrent_runs_never_see_half_an_entry(tmp_path):
    """Three processes (as three gate runs would be: subprocesses, not forks of a process
    that may hold TensorFlow's threads) write and read one key while this one reads it."""
    import subprocess
    import sys

    key = cache_key({"model": "shared"})
    procs = [subprocess.Popen([sys.executable, "-c", WRITER, str(tmp_path), key, "20"]) for _ in range(3)]
    reader = Cache(tmp_path)
    deadline = time.time() + 60
    while any(p.poll() is None for p in procs) and time.time() < deadline:
        entry = reader.get(key)
        assert entry is None or len(entry.files["candidate.tflite"]) == 20_000
    assert [p.wait(60) for p in procs] == [0, 0, 0]
    assert reader.notes == []
    assert reader.get(key) is not None
    assert not list(tmp_path.glob(".tmp-*"))


def test_eviction_keeps_the_most_recently_used_within_the_bound(tmp_path):
    blob = {"candidate.tflite": b"x" * 10_000}
    cache = Cache(tmp_path, max_bytes=35_000)
    keys = [cache_key({"n": i}) for i in range(3)]
    for i, key in enumerate(keys):
        cache.put(key, {"n": i}, blob)
        os.utime(tmp_path / key, (1000 + i, 1000 + i))
    assert cache.get(keys[0]) is not None          # used now: the most recent
    cache.put(cache_key({"n": 3}), {"n": 3}, blob)  # over the bound: the least recently used goes
    assert cache.get(keys[1]) is None and cache.get(keys[0]) is not None and cache.get(keys[2]) is not None
    assert sum(size for _, size, _ in cache.entries()) <= 35_000


def test_entries_are_readable_by_another_user(tmp_path):
    """In the Action the container writes as root and actions/cache saves as the runner's
    user: an entry's directory and files must be world-readable (mkdtemp makes 0700)."""
    cache = Cache(tmp_path / "c")
    key = cache_key({"model": "perm"})
    cache.put(key, RECORD_DATA, FILES)
    entry = tmp_path / "c" / key
    assert entry.stat().st_mode & 0o005 == 0o005
    assert all(p.stat().st_mode & 0o004 for p in entry.iterdir())
