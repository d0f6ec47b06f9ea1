"""Load a `.gitlab-ci.yml` the way GitLab reads it, keeping every node's line and column.

Anchors, aliases and merge keys (`<<: *x`, `<<: [*a, *b]`) are applied as YAML defines them
(explicit keys win, earlier merge sources win over later ones). GitLab's `!reference [job,
key, ...]` tags become `Reference` placeholders that `resolve_references` replaces after
loading, as GitLab does (after `extends`; references inside referenced values are followed,
up to GitLab's ten levels). Positions come from `yaml.compose`, so a problem found in the
converted data can be reported at its place in the file.

Conversion expands every alias, so the composed file is measured first and refused when its
aliases expand too far or it nests too deep (`safe_yaml.check_yaml_size`, go-yaml's rule and
GitLab's depth): a few hundred bytes of nested anchors would otherwise stand for billions of
nodes.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any

import yaml

from timbel_dagster.pipeline_templates.results import Issue, issue
from timbel_dagster.safe_yaml import (
    MAX_YAML_DEPTH,
    YamlTooLargeError,
    check_yaml_size,
    nesting_depth,
)

Path_ = tuple[str | int, ...]
MAX_REFERENCE_DEPTH = 10
# GitLab refuses a configuration whose parsed form takes over 2 MB of memory (its
# max_yaml_size_bytes), tens of thousands of values; these caps are above anything it accepts
# and keep the worst file to a few seconds of checking.
MAX_FILE_BYTES = 1024 * 1024
MAX_NODES = 100_000
_MERGE = "tag:yaml.org,2002:merge"
_STANDARD = "tag:yaml.org,2002:"


@dataclass(frozen=True)
class Reference:
    """An unresolved `!reference [job, key, ...]` at a 1-based line/column."""

    path: tuple[str, ...]
    line: int
    column: int

    def __str__(self) -> str:
        return f"!reference [{', '.join(self.path)}]"


@dataclass
class LoadedYaml:
    """The converted document, where each value and mapping key was, and load problems."""

    data: Any
    positions: dict[Path_, tuple[int, int]] = field(default_factory=dict)
    key_positions: dict[Path_, tuple[int, int]] = field(default_factory=dict)
    errors: list[Issue] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    def position(self, path: Path_, key: bool = False) -> tuple[int, int]:
        """Where `path` (or its key) is, else its nearest recorded ancestor, else (1, 1)."""
        if key and path in self.key_positions:
            return self.key_positions[path]
        while path:
            if path in self.positions:
                return self.positions[path]
            path = path[:-1]
        return self.positions.get((), (1, 1))


def _mark(node: yaml.Node) -> tuple[int, int]:
    return node.start_mark.line + 1, node.start_mark.column + 1


class _Converter:
    """Plain data from a composed document that `check_yaml_size` accepted (so no alias
    refers to a node that contains it, and the expanded size is bounded)."""

    def __init__(self, loaded: LoadedYaml) -> None:
        self.loaded = loaded
        self.constructor = yaml.constructor.SafeConstructor()

    def error(self, node: yaml.Node, message: str) -> None:
        self.loaded.errors.append(issue(*_mark(node), message))

    def scalar(self, node: yaml.ScalarNode) -> Any:
        if not node.tag.startswith(_STANDARD):
            self.error(node, f"unknown YAML tag {node.tag} (GitLab knows only !reference)")
            return node.value
        value = self.constructor.construct_object(node, deep=True)
        # JSON has no dates; GitLab hands them on as the text that was written
        return node.value if isinstance(value, dt.date | bytes) else value

    def convert(self, node: yaml.Node, path: Path_) -> Any:
        self.loaded.positions[path] = _mark(node)
        if isinstance(node, yaml.ScalarNode):
            if node.tag == "!reference":
                self.error(node, "!reference needs a list: !reference [job, key]")
                return None
            return self.scalar(node)
        if isinstance(node, yaml.SequenceNode):
            return self.sequence(node, path)
        return self.mapping(node, path)

    def sequence(self, node: yaml.SequenceNode, path: Path_) -> Any:
        if node.tag == "!reference":
            parts = [item.value for item in node.value if isinstance(item, yaml.ScalarNode)]
            if len(parts) != len(node.value) or not parts:
                self.error(node, "!reference needs a list of names: !reference [job, key]")
                return None
            return Reference(tuple(str(p) for p in parts), *_mark(node))
        if not node.tag.startswith(_STANDARD):
            self.error(node, f"unknown YAML tag {node.tag} (GitLab knows only !reference)")
        return [self.convert(item, (*path, i)) for i, item in enumerate(node.value)]

    def merge_sources(self, value: yaml.Node) -> list[yaml.MappingNode]:
        sources = value.value if isinstance(value, yaml.SequenceNode) else [value]
        good = [s for s in sources if isinstance(s, yaml.MappingNode)]
        if len(good) != len(sources):
            self.error(value, "a merge key (<<) takes a mapping or a list of mappings")
        return good

    def mapping(self, node: yaml.MappingNode, path: Path_) -> dict[str, Any]:
        if not node.tag.startswith(_STANDARD):
            self.error(node, f"unknown YAML tag {node.tag} (GitLab knows only !reference)")
        merged: dict[str, Any] = {}
        explicit: dict[str, Any] = {}
        for key_node, value_node in node.value:
            if key_node.tag == _MERGE:
                # earlier sources win over later ones, explicit keys over all of them
                for source in reversed(self.merge_sources(value_node)):
                    converted = self.convert(source, path)
                    merged.update(converted if isinstance(converted, dict) else {})
                continue
            if not isinstance(key_node, yaml.ScalarNode):
                self.error(key_node, "a mapping key must be a plain value")
                continue
            key = str(self.scalar(key_node))
            if key in explicit:
                line, _ = _mark(key_node)
                self.loaded.warnings.append(f"line {line}: key '{key}' repeated; the last wins")
            self.loaded.key_positions[(*path, key)] = _mark(key_node)
            explicit[key] = self.convert(value_node, (*path, key))
        self.loaded.positions[path] = _mark(node)
        return {**merged, **explicit}


def size_issue(size: int) -> Issue | None:
    """The error for a file of `size` bytes when it is over `MAX_FILE_BYTES`."""
    if size <= MAX_FILE_BYTES:
        return None
    return issue(None, None, f"the file is over the limit of {MAX_FILE_BYTES:,} bytes")


def load(text: str) -> LoadedYaml:
    """Parse GitLab CI YAML. A syntax error yields no data and one positioned error; a file
    of several documents is a `spec:` header followed by the configuration. A file over
    `MAX_FILE_BYTES`, or whose aliases expand past `check_yaml_size`'s limits or
    `MAX_NODES`, yields one error and no data."""
    loaded = LoadedYaml(data=None)
    too_large = size_issue(len(text.encode("utf-8", errors="replace")))
    if too_large:
        loaded.errors.append(too_large)
        return loaded
    try:
        # The composer below recurses once per level: a document nested past the limit is
        # refused from the parser's events before it is composed.
        depth = nesting_depth(text)
        if depth is None or depth > MAX_YAML_DEPTH:
            message = (
                f"YAML nested {depth:,} levels deep, over the limit of {MAX_YAML_DEPTH}"
                if depth
                else f"YAML nested too deeply to read (the limit is {MAX_YAML_DEPTH} levels)"
            )
            loaded.errors.append(issue(None, None, message))
            return loaded
        nodes = list(yaml.compose_all(text, Loader=yaml.SafeLoader))
    except yaml.MarkedYAMLError as error:
        mark = error.problem_mark or error.context_mark
        line, column = (mark.line + 1, mark.column + 1) if mark else (None, None)
        problem = " ".join(p for p in (error.context, error.problem) if p)
        loaded.errors.append(issue(line, column, f"YAML syntax: {problem}"))
        return loaded
    except yaml.YAMLError as error:
        loaded.errors.append(issue(None, None, f"YAML syntax: {error}"))
        return loaded
    except RecursionError:  # the pure-Python composer recurses once per level
        message = f"YAML nested too deeply to read (the limit is {MAX_YAML_DEPTH} levels)"
        loaded.errors.append(issue(None, None, message))
        return loaded
    try:
        counted = (0, 0)
        for node in nodes:
            counted = check_yaml_size(node, counted, MAX_NODES)
    except YamlTooLargeError as error:
        loaded.errors.append(issue(*(error.mark or (None, None)), error.problem))
        return loaded
    if not nodes:
        loaded.errors.append(issue(1, 1, "the file is empty"))
        return loaded
    if len(nodes) > 2:
        loaded.errors.append(issue(*_mark(nodes[2]), "more than two YAML documents"))
    if len(nodes) > 1:
        loaded.warnings.append(
            "spec: header: inputs are not interpolated; values using $[[ inputs.* ]] are not "
            "checked against stages and jobs"
        )
    loaded.data = _Converter(loaded).convert(nodes[-1], ())
    return loaded


def _follow(root: Any, reference: Reference) -> tuple[Any, str | None]:
    value = root
    for depth, part in enumerate(reference.path):
        if not isinstance(value, dict) or part not in value:
            where = ".".join(reference.path[:depth]) or "the top level"
            return None, f"{reference}: '{part}' is not defined in {where}"
        value = value[part]
    return value, None


def resolve_references(data: Any, root: Any) -> tuple[Any, list[Issue]]:
    """`data` with every `!reference` replaced by the value it names in `root`.

    Raises:
        YamlTooLargeError: the result would hold more than `MAX_NODES` values (references
            to values full of references multiply like aliases do).
    """
    problems: list[Issue] = []
    produced = 0

    def resolve(value: Any, depth: int) -> Any:
        nonlocal produced
        produced += 1
        if produced > MAX_NODES:
            raise YamlTooLargeError(
                f"!reference tags expand the configuration past the limit of {MAX_NODES:,} values"
            )
        if isinstance(value, Reference):
            if depth >= MAX_REFERENCE_DEPTH:
                message = f"{value}: nested more than {MAX_REFERENCE_DEPTH} levels deep"
                problems.append(issue(value.line, value.column, message))
                return None
            target, problem = _follow(root, value)
            if problem:
                problems.append(issue(value.line, value.column, problem))
                return None
            return resolve(target, depth + 1)
        if isinstance(value, dict):
            return {k: resolve(v, depth) for k, v in value.items()}
        if isinstance(value, list):
            return [resolve(v, depth) for v in value]
        return value

    return resolve(data, 0), problems


_SCRIPT_KEYS = ("script", "before_script", "after_script")


def _flatten(items: list[Any], levels: int) -> list[Any]:
    flat: list[Any] = []
    for item in items:
        if isinstance(item, list) and levels > 0:
            flat.extend(_flatten(item, levels - 1))
        else:
            flat.append(item)
    return flat


def flatten_like_gitlab(config: Any) -> Any:
    """Nested lists flattened where GitLab flattens them: scripts (up to ten levels, so that
    `- !reference [.setup, script]` splices in) and `rules` (one level)."""
    if not isinstance(config, dict):
        return config
    flattened: dict[str, Any] = {}
    for name, entry in config.items():
        if isinstance(entry, dict):
            entry = dict(entry)
            for key in _SCRIPT_KEYS:
                if isinstance(entry.get(key), list):
                    entry[key] = _flatten(entry[key], MAX_REFERENCE_DEPTH)
            if isinstance(entry.get("rules"), list):
                entry["rules"] = _flatten(entry["rules"], 1)
        flattened[name] = entry
    return flattened
