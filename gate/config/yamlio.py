"""YAML reading that remembers where each value stood, for error messages with lines."""
from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import yaml

from gate.errors import ConfigError
from gate.formats import LFS_HINT, LFS_MESSAGE, LFS_POINTER_PREFIX

Loc = tuple[str | int, ...]


class _UniqueKeyLoader(yaml.SafeLoader):
    """SafeLoader that refuses duplicate keys instead of silently keeping the last."""


def _construct_mapping(loader: _UniqueKeyLoader, node: yaml.MappingNode, deep: bool = False):
    seen: dict[Any, int] = {}
    for key_node, _ in node.value:
        key = loader.construct_object(key_node, deep=True)
        try:
            hash(key)
        except TypeError:
            raise yaml.constructor.ConstructorError(
                None, None, f"found unhashable key of type {type(key).__name__}", key_node.start_mark) from None
        if key in seen:
            raise yaml.constructor.ConstructorError(
                None, None, f"duplicate key {key!r} (first at line {seen[key] + 1})",
                key_node.start_mark)
        seen[key] = key_node.start_mark.line
    return loader.construct_mapping(node, deep=deep)


_UniqueKeyLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)


def _lines(node: yaml.Node, loc: Loc, out: dict[Loc, int], _open: frozenset[int] = frozenset()) -> None:
    out[loc] = node.start_mark.line + 1
    if id(node) in _open:  # a recursive alias (`&a [*a]`): do not walk it forever
        return
    _open = _open | {id(node)}
    if isinstance(node, yaml.MappingNode):
        for key_node, value_node in node.value:
            key = key_node.value if isinstance(key_node, yaml.ScalarNode) else str(key_node.value)
            out[loc + (key,)] = key_node.start_mark.line + 1
            _lines(value_node, loc + (key,), out, _open)
            out[loc + (key,)] = key_node.start_mark.line + 1
    elif isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            _lines(item, loc + (i,), out, _open)


class YamlDoc:
    """A parsed YAML mapping plus the line of every key path."""

    def __init__(self, data: Any, lines: dict[Loc, int], file: str, sha256: str | None = None):
        self.data = data
        self.lines = lines
        self.file = file
        self.sha256 = sha256      # of the file's bytes (read_yaml), for provenance

    def line_of(self, loc: Loc) -> int | None:
        loc = tuple(loc)
        while loc:
            if loc in self.lines:
                return self.lines[loc]
            loc = loc[:-1]
        return None


def parse_yaml(text: str, file: str) -> YamlDoc:
    try:
        node = yaml.compose(text, Loader=_UniqueKeyLoader)
        data = yaml.load(text, Loader=_UniqueKeyLoader)  # noqa: S506 - SafeLoader subclass
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark else None
        problem = " ".join(str(p) for p in (exc.context, exc.problem) if p)
        raise ConfigError(f"invalid YAML: {problem}", file=file, line=line) from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"invalid YAML: {exc}", file=file) from None
    except RecursionError:
        raise ConfigError("invalid YAML: nested too deeply", file=file) from None
    lines: dict[Loc, int] = {}
    if node is not None:
        _lines(node, (), lines)
    return YamlDoc(data, lines, file)


def read_yaml(path: Path, *, kind: str = "config") -> YamlDoc:
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise ConfigError(f"{kind} file not found", file=str(path)) from None
    except IsADirectoryError:
        raise ConfigError(f"expected a {kind} YAML file, found a directory", file=str(path)) from None
    except OSError as exc:
        raise ConfigError(f"cannot read {kind} file: {exc.strerror}", file=str(path)) from None
    if raw.startswith(LFS_POINTER_PREFIX):
        raise ConfigError(LFS_MESSAGE, file=str(path), hint=LFS_HINT)
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{kind} file is not UTF-8 text (byte {exc.start})", file=str(path)) from None
    doc = parse_yaml(text, str(path))
    doc.sha256 = hashlib.sha256(raw).hexdigest()
    return doc
