"""A pipeline's stage layout as a tree, and its critical path from typical stage durations.

Stages are identified by `(parent_name, name)`. Stages that share a `parent_name` are the
branches of one parallel block and run side by side; everything else runs in sequence in the
order of `position`. The block may be a stage row of its own (Jenkins lists the `parallel`
stage itself, whose branches name it as parent) or only a name (GitLab's stage, which has no
row): either way the block takes as long as its longest branch, and the block row's own
duration is not counted again. A branch may itself be a block (nested `parallel`).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

StageKey = tuple[str | None, str]  # (parent_name, name)


@dataclass(frozen=True)
class Node:
    """A leaf stage (key set, no children) or a block of parallel branches."""

    label: str
    position: float
    key: StageKey | None = None
    children: tuple[Node, ...] = field(default_factory=tuple)

    @property
    def is_block(self) -> bool:
        return bool(self.children)

    def leaves(self) -> list[StageKey]:
        if not self.is_block:
            return [self.key] if self.key is not None else []
        return [leaf for child in self.children for leaf in child.leaves()]


@dataclass(frozen=True)
class Layout:
    """The top-level units of a pipeline, in the order they run."""

    units: tuple[Node, ...]

    def unit_seconds(self, unit: Node, seconds: Mapping[StageKey, float]) -> float:
        if not unit.is_block:
            return float(seconds.get(unit.key, 0.0)) if unit.key is not None else 0.0
        return max(self.unit_seconds(child, seconds) for child in unit.children)

    def length(self, seconds: Mapping[StageKey, float]) -> float:
        """Wall time of one run when each leaf stage takes `seconds[key]`."""
        return sum(self.unit_seconds(unit, seconds) for unit in self.units)

    def path(self, seconds: Mapping[StageKey, float]) -> list[StageKey]:
        """The leaf stages on the critical path, in order (ties: the earlier branch)."""
        keys: list[StageKey] = []
        for unit in self.units:
            node = unit
            while node.is_block:
                node = max(
                    node.children, key=lambda c: (self.unit_seconds(c, seconds), -c.position)
                )
            if node.key is not None:
                keys.append(node.key)
        return keys


def build_layout(stages: Mapping[StageKey, float]) -> Layout:
    """The layout of a pipeline from its stages and their (typical) positions.

    Args:
        stages: (parent_name, name) -> position of every stage seen in the pipeline.

    Returns:
        The pipeline's layout; leaves keep their stage keys.
    """
    children: dict[str, list[StageKey]] = {}
    for key in sorted(stages, key=lambda k: (stages[k], k[1])):
        if key[0] is not None:
            children.setdefault(key[0], []).append(key)

    def is_container(key: StageKey) -> bool:
        # A stage is a block when other stages name it as parent. GitLab's job "build" in
        # stage "build" names itself: that is a branch, not a block.
        return key[0] != key[1] and key[1] in children

    def node(key: StageKey, seen: frozenset[str]) -> Node:
        if is_container(key) and key[1] not in seen:
            return block(key[1], stages[key], seen | {key[1]})
        return Node(label=key[1], position=stages[key], key=key)

    def block(name: str, position: float | None, seen: frozenset[str]) -> Node:
        branches = tuple(node(k, seen) for k in children[name])
        where = min(b.position for b in branches)
        return Node(
            label=name,
            position=where if position is None else min(where, position),
            children=branches,
        )

    container_names = {key[1] for key in stages if is_container(key)}
    units = [node(key, frozenset()) for key in stages if key[0] is None]
    # Blocks without a row of their own (GitLab stages, Jenkins blocks whose row is missing).
    units += [
        block(name, None, frozenset({name})) for name in children if name not in container_names
    ]
    return Layout(units=tuple(sorted(units, key=lambda u: (u.position, u.label))))
