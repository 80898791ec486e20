"""Depth-first over a JSON config tree, bounded in depth: the one walk both config
checkers (tf_keras: gate.scan.config_tree, Keras 3: gate.scan.keras3) use."""
from __future__ import annotations

from typing import Any, Callable

OnDict = Callable[[dict, str, "str | None"], None]     # (the dict, its path, the key it sits under)


def visit_dicts(node: Any, *, max_depth: int, on_dict: OnDict, too_deep: Callable[[str], None],
                path: str = "", depth: int = 0, parent_key: str | None = None) -> None:
    """Call `on_dict` for every dict in the tree, parents first; `too_deep(path)` (which
    raises) where the nesting passes `max_depth`. A list passes its parent's key down."""
    if depth > max_depth:
        too_deep(path)
    if isinstance(node, dict):
        on_dict(node, path, parent_key)
        for key, value in node.items():
            visit_dicts(value, max_depth=max_depth, on_dict=on_dict, too_deep=too_deep,
                        path=f"{path}.{key}" if path else str(key), depth=depth + 1, parent_key=key)
    elif isinstance(node, list):
        for i, value in enumerate(node):
            visit_dicts(value, max_depth=max_depth, on_dict=on_dict, too_deep=too_deep,
                        path=f"{path}[{i}]", depth=depth + 1, parent_key=parent_key)
