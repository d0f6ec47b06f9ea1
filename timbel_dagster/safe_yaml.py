"""YAML read safely and with bounded work, for every YAML Timbel reads.

Repository files are written by anyone who can push, and operators' files may come from
anywhere, so every YAML document is measured before it is built: anchors and aliases let a
few hundred bytes stand for billions of nodes (a "billion laughs"), and code that walks the
loaded data (or converts it, as the GitLab CI checker does, or serialises it, as the alert
rule store does) pays for every one of them. `check_yaml_size` counts the nodes the document
holds once every alias is expanded, without expanding anything, and refuses it with
`YamlTooLargeError` by go-yaml v3's rule (the one Kubernetes reads manifests with), plus
GitLab's limit of 150 levels of nesting. Only YAML's safe types are ever constructed.

This module imports nothing of Timbel's, so every layer may use it.
"""

from __future__ import annotations

from typing import Any

import yaml

# libyaml's loader is many times faster than the pure-Python one on lockfiles.
_LOADER: Any = getattr(yaml, "CSafeLoader", yaml.SafeLoader)

# go-yaml v3 (decode.go, allowedAliasRatio), as vendored by Kubernetes' sigs.k8s.io/yaml: any
# document of up to 1,000 nodes, or with up to 100 nodes reached through aliases, is fine;
# above that up to 99% of the nodes may come from aliases while the expanded document has at
# most 400,000 nodes, a share that falls linearly to 10% at 4,000,000.
ALIAS_FREE_NODES = 1_000
ALIAS_FREE_ALIASED = 100
ALIAS_RATIO_LOW, ALIAS_RATIO_HIGH = 400_000, 4_000_000
MAX_YAML_DEPTH = 150  # GitLab's max_yaml_depth default (it was 100 at first)


class YamlTooLargeError(yaml.YAMLError, ValueError):
    """A YAML document over a limit of `check_yaml_size`: `problem` says which, `mark` is the
    1-based (line, column) it is about, None for the whole document."""

    def __init__(self, problem: str, mark: tuple[int, int] | None = None) -> None:
        self.problem, self.mark = problem, mark
        super().__init__(f"line {mark[0]}: {problem}" if mark else problem)


def _allowed_alias_ratio(total: int) -> float:
    if total <= ALIAS_RATIO_LOW:
        return 0.99
    if total >= ALIAS_RATIO_HIGH:
        return 0.10
    return 0.99 - 0.89 * (total - ALIAS_RATIO_LOW) / (ALIAS_RATIO_HIGH - ALIAS_RATIO_LOW)


def _excessive(total: int, written: int) -> bool:
    aliased = total - written
    return (
        aliased > ALIAS_FREE_ALIASED
        and total > ALIAS_FREE_NODES
        and aliased / total > _allowed_alias_ratio(total)
    )


def allowed_yaml_nodes(written: int) -> int:
    """The most nodes a document of `written` distinct nodes may expand to."""
    low, high = written, max(written + ALIAS_FREE_ALIASED, ALIAS_FREE_NODES, 100 * written) + 1
    while not _excessive(high, written):  # beyond the ratio range the allowance grows too
        high *= 2
    while high - low > 1:  # _excessive is monotonic in the total: bisect its edge
        middle = (low + high) // 2
        low, high = (low, middle) if _excessive(middle, written) else (middle, high)
    return low


def _children(node: yaml.Node) -> list[yaml.Node]:
    if isinstance(node, yaml.SequenceNode):
        return node.value
    return [part for pair in node.value for part in pair]  # a MappingNode


def yaml_size(root: yaml.Node) -> tuple[int, int, int, yaml.Node | None]:
    """(nodes once aliases are expanded, distinct nodes, depth, the first node an alias
    inside it refers back to) of a composed document, in time linear in its distinct nodes.

    An alias is the same node object met again, so each collection's expanded size is
    computed once and reused. An alias back into its own ancestor (a cycle) counts as one
    node; the readers refuse such documents.
    """
    if isinstance(root, yaml.ScalarNode):
        return 1, 1, 1, None
    sizes: dict[int, tuple[int, int]] = {}  # collection id -> (expanded nodes, depth)
    scalars: set[int] = set()  # distinct scalars: each expands to itself
    active: set[int] = set()  # the collections on the path being walked
    cycle: yaml.Node | None = None
    stack: list[tuple[yaml.Node, list[yaml.Node] | None]] = [(root, None)]
    while stack:
        node, children = stack.pop()
        if children is not None:  # every child is sized: size the node
            total, depth = 1, 1
            for child in children:
                size, child_depth = sizes.get(id(child), (1, 1))  # scalar or cycle: 1
                total += size
                depth = max(depth, child_depth + 1)
            sizes[id(node)] = (total, depth)
            active.discard(id(node))
            continue
        if id(node) in sizes:
            continue
        children = _children(node)
        active.add(id(node))
        stack.append((node, children))
        for child in children:
            if isinstance(child, yaml.ScalarNode):
                scalars.add(id(child))
            elif id(child) in active:
                cycle = cycle or child
            elif id(child) not in sizes:
                stack.append((child, None))
    total, depth = sizes[id(root)]
    return total, len(sizes) + len(scalars), depth, cycle


def nesting_depth(text: str) -> int | None:
    """How deep `text`'s collections nest as written (aliases not followed), measured on the
    parser's events, which PyYAML produces without recursion, so that a reader can refuse a
    deep document before the pure-Python composer recurses once per level into it (catching
    its RecursionError is not enough: where it strikes depends on the caller's stack).
    None when libyaml refuses the nesting itself (deeper than its own limit of 1,000). At a
    syntax error, the depth reached before it: the composer then reports the error in its
    own words, as it did before this check.
    """
    depth = deepest = 0
    try:
        for event in yaml.parse(text, Loader=_LOADER):
            if isinstance(event, (yaml.MappingStartEvent, yaml.SequenceStartEvent)):
                depth += 1
                deepest = max(deepest, depth)
            elif isinstance(event, (yaml.MappingEndEvent, yaml.SequenceEndEvent)):
                depth -= 1
            elif isinstance(event, (yaml.ScalarEvent, yaml.AliasEvent)):
                deepest = max(deepest, depth + 1)
    except yaml.YAMLError as error:
        if "maximum nesting depth" in str(getattr(error, "problem", "")):
            return None
    return deepest


def check_yaml_size(
    root: yaml.Node, before: tuple[int, int] = (0, 0), max_nodes: int | None = None
) -> tuple[int, int]:
    """Refuse a composed document whose aliases expand too far, that nests too deep, or in
    which an alias refers to the node that contains it.

    Args:
        root: The composed document.
        before: (expanded, distinct) nodes of the earlier documents of the same stream: the
            alias allowance is for the whole file, not renewed by each `---`.
        max_nodes: An absolute cap on the expanded nodes, for readers that do more work per
            node than building it (None: only go-yaml's rule).

    Returns:
        The stream's (expanded, distinct) nodes with this document's added.

    Raises:
        YamlTooLargeError: one line naming the counts and the limit.
    """
    total, written, depth, cycle = yaml_size(root)
    total, written = total + before[0], written + before[1]
    if _excessive(total, written):
        raise YamlTooLargeError(
            f"YAML aliases expand {written:,} written nodes to {total:,}, over the limit of "
            f"{allowed_yaml_nodes(written):,} for a document this size (excessive aliasing)"
        )
    if max_nodes is not None and total > max_nodes:
        raise YamlTooLargeError(
            f"YAML expands to {total:,} nodes ({written:,} written), over the limit of "
            f"{max_nodes:,}"
        )
    if depth > MAX_YAML_DEPTH:
        raise YamlTooLargeError(
            f"YAML nested {depth:,} levels deep, over the limit of {MAX_YAML_DEPTH}"
        )
    if cycle is not None:
        raise YamlTooLargeError(
            "an alias refers to the node that contains it",
            (cycle.start_mark.line + 1, cycle.start_mark.column + 1),
        )
    return total, written


def load_yaml(text: str) -> Any:
    """One YAML document, safely: no Python objects, alias expansion and depth limited.

    Raises:
        yaml.YAMLError: not one YAML document; YamlTooLargeError (also a ValueError) when it
            is over the limits of `check_yaml_size`.
    """
    loader = _LOADER(text)
    try:
        node = loader.get_single_node()
        if node is None:
            return None
        check_yaml_size(node)
        return loader.construct_document(node)
    finally:
        loader.dispose()


def load_yaml_documents(text: str) -> list[Any]:
    """Every document of a multi-document YAML stream, empty ones dropped; the stream is
    checked as a whole as `load_yaml` checks one document."""
    loader = _LOADER(text)
    documents: list[Any] = []
    counted = (0, 0)
    try:
        while loader.check_node():
            node = loader.get_node()
            counted = check_yaml_size(node, counted)
            document = loader.construct_document(node)
            if document is not None:
                documents.append(document)
    finally:
        loader.dispose()
    return documents
