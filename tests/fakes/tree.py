"""Jenkins' `tree=` query parameter: parse it and apply it to a JSON value."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Node:
    name: str
    children: tuple[Node, ...] | None
    window: tuple[int, int | None] | None  # {M,N}: list indices [M, N)


def parse_tree(text: str) -> tuple[Node, ...]:
    nodes, rest = _parse_list(text, 0)
    if rest != len(text):
        raise ValueError(f"unexpected {text[rest]!r} at {rest} in tree={text}")
    return nodes


def _parse_list(text: str, i: int) -> tuple[tuple[Node, ...], int]:
    nodes = []
    while i < len(text):
        start = i
        while i < len(text) and text[i] not in ",[]{}":
            i += 1
        name = text[start:i]
        children = window = None
        if i < len(text) and text[i] == "[":
            children, i = _parse_list(text, i + 1)
            if i >= len(text) or text[i] != "]":
                raise ValueError(f"unclosed [ in tree={text}")
            i += 1
        if i < len(text) and text[i] == "{":
            end = text.index("}", i)
            low, _, high = text[i + 1 : end].partition(",")
            window = (int(low or 0), int(high) if high else None)
            i = end + 1
        nodes.append(Node(name, children, window))
        if i < len(text) and text[i] == ",":
            i += 1
            continue
        break
    return tuple(nodes), i


def apply_tree(value: Any, nodes: tuple[Node, ...]) -> Any:
    if isinstance(value, list):
        return [apply_tree(item, nodes) for item in value]
    if not isinstance(value, dict):
        return value
    out: dict[str, Any] = {"_class": value["_class"]} if "_class" in value else {}
    for node in nodes:
        if node.name not in value:
            continue
        item = value[node.name]
        if callable(item):  # computed lazily: lists of builds are large
            item = item(node.window)
        elif node.window and isinstance(item, list):
            low, high = node.window
            item = item[low:high]
        out[node.name] = apply_tree(item, node.children) if node.children else (_depth_zero(item))
    return out


def _depth_zero(value: Any) -> Any:
    """Without a subtree Jenkins shows nested objects only by their `_class` (and a few keys)."""
    if isinstance(value, list):
        return [_depth_zero(v) for v in value]
    if isinstance(value, dict):
        return {k: v for k, v in value.items() if k in ("_class", "number", "url", "name")}
    return value
