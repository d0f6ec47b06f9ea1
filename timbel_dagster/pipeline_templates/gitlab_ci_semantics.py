"""The rules GitLab checks beyond the JSON schema: `extends`, stages, `needs`, visible jobs.

They mirror what GitLab's pipeline editor reports for a single file: `extends` targets exist
and form no cycle, every job's stage is declared, `needs` and `dependencies` name existing jobs
(`optional: true` excused) in the same or an earlier stage, `needs` form no cycle, at least one
visible job. Jobs and templates from `include:` files are not fetched, so when a file includes
others, references to jobs it does not define are warnings instead of errors.
"""

from __future__ import annotations

from typing import Any

from timbel_dagster.pipeline_templates.gitlab_yaml import LoadedYaml, resolve_references
from timbel_dagster.pipeline_templates.results import Issue, issue

GLOBAL_KEYWORDS = frozenset(
    {"image", "services", "stages", "types", "before_script", "after_script", "variables",
     "cache", "include", "workflow", "default", "spec"}
)  # fmt: skip
DEFAULT_STAGES = ("build", "test", "deploy")
MAX_EXTENDS_DEPTH = 11
_INPUT = "$[["  # CI/CD inputs interpolation, resolved by GitLab before these checks


def deep_merge(base: dict[str, Any], override: dict[str, Any]) -> dict[str, Any]:
    """GitLab's `extends` merge: mappings merge key by key, anything else is replaced."""
    merged = dict(base)
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = deep_merge(merged[key], value)
        else:
            merged[key] = value
    return merged


class _Report:
    def __init__(self, loaded: LoadedYaml, lenient: bool) -> None:
        self.loaded, self.lenient = loaded, lenient
        self.errors: list[Issue] = []
        self.warnings: list[str] = []

    def error(self, path: tuple[str | int, ...], message: str) -> None:
        self.errors.append(issue(*self.loaded.position(path), message))

    def unknown(self, path: tuple[str | int, ...], message: str) -> None:
        """A problem an included file could explain (a job, stage or script defined there):
        a warning when the file has `include:`, else an error."""
        if self.lenient:
            line, _ = self.loaded.position(path)
            self.warnings.append(f"line {line}: {message} (it may be defined in an include)")
        else:
            self.error(path, message)


def _names(value: Any) -> list[str]:
    if isinstance(value, str):
        return [value]
    return [v for v in value if isinstance(v, str)] if isinstance(value, list) else []


def expand_extends(config: dict[str, Any], report: _Report) -> dict[str, Any]:
    """Every entry with its `extends` parents merged in (parents in order, the job last)."""
    done: dict[str, dict[str, Any]] = {}
    cycles: set[frozenset[str]] = set()

    def expand(name: str, chain: tuple[str, ...]) -> dict[str, Any]:
        if name in done:
            return done[name]
        job = config[name]
        base: dict[str, Any] = {}
        for parent in _names(job.get("extends")):
            if parent in chain or parent == name:
                cycle = (*chain[chain.index(parent) :], parent) if parent in chain else (name,)
                if frozenset(cycle) not in cycles:
                    cycles.add(frozenset(cycle))
                    report.error((name, "extends"), f"circular extends: {' -> '.join(cycle)}")
            elif not isinstance(config.get(parent), dict):
                report.unknown((name, "extends"), f"'{name}' extends unknown '{parent}'")
            elif len(chain) >= MAX_EXTENDS_DEPTH:
                too_deep = f"'{name}': extends nested more than {MAX_EXTENDS_DEPTH} levels"
                report.error((name, "extends"), too_deep)
            else:
                base = deep_merge(base, expand(parent, (*chain, parent)))
        own = {k: v for k, v in job.items() if k != "extends"}
        done[name] = deep_merge(base, own)
        return done[name]

    expanded = dict(config)
    for name, value in config.items():
        if isinstance(value, dict) and name not in GLOBAL_KEYWORDS:
            expanded[name] = expand(name, (name,))
    return expanded


def _stages(config: dict[str, Any]) -> list[str]:
    declared = config.get("stages")
    if not isinstance(declared, list):
        declared = list(DEFAULT_STAGES)
    flat: list[str] = []
    for entry in declared:  # GitLab flattens one level of nested lists
        flat.extend(_names(entry))
    return [*([] if ".pre" in flat else [".pre"]), *flat, *([] if ".post" in flat else [".post"])]


def _needs(job: dict[str, Any]) -> list[tuple[int, str, bool]]:
    """(index, job name, optional) of the needs that point into this pipeline."""
    needs = job.get("needs")
    found: list[tuple[int, str, bool]] = []
    for index, need in enumerate(needs if isinstance(needs, list) else []):
        if isinstance(need, str):
            found.append((index, need, False))
        elif (
            isinstance(need, dict)
            and isinstance(need.get("job"), str)
            and "project" not in need
            and "pipeline" not in need
        ):
            found.append((index, need["job"], need.get("optional") is True))
    return found


def _cycles(graph: dict[str, list[str]]) -> list[list[str]]:
    """Each distinct cycle of the needs graph once, as a path a -> b -> a."""
    found: list[list[str]] = []
    seen: set[frozenset[str]] = set()
    state: dict[str, int] = {}  # 1 on the current path, 2 finished

    def visit(node: str, path: list[str]) -> None:
        state[node] = 1
        for target in graph.get(node, []):
            if state.get(target) == 1:
                cycle = [*path[path.index(target) :], target]
                if frozenset(cycle) not in seen:
                    seen.add(frozenset(cycle))
                    found.append(cycle)
            elif target not in state:
                visit(target, [*path, target])
        state[node] = 2

    for node in graph:
        if node not in state:
            visit(node, [node])
    return found


def semantic_issues(
    config: dict[str, Any], loaded: LoadedYaml, lenient: bool
) -> tuple[dict[str, Any], list[Issue], list[str]]:
    """The config with `extends` applied (`!reference`s left in), its errors and warnings.

    The checks see references resolved; unresolvable ones are reported by the caller, which
    resolves the file as written against the returned configuration.
    """
    report = _Report(loaded, lenient)
    expanded = expand_extends(config, report)
    resolved, _ = resolve_references(expanded, expanded)
    jobs = {
        name: job
        for name, job in resolved.items()
        if name not in GLOBAL_KEYWORDS and not name.startswith(".") and isinstance(job, dict)
    }
    if not jobs:
        report.unknown((), "no visible job: every job is hidden (name starts with '.') or absent")
    stages = _stages(resolved)
    stage_of: dict[str, int] = {}
    for name, job in jobs.items():
        stage = job.get("stage", "test")
        if isinstance(stage, str) and stage not in stages and _INPUT not in stage:
            declared = ", ".join(stages)
            message = f"job '{name}': stage '{stage}' is not declared in stages ({declared})"
            report.unknown((name, "stage"), message)
        stage_of[name] = stages.index(stage) if stage in stages else -1
        if not any(k in job for k in ("script", "run", "trigger")):
            report.unknown((name,), f"job '{name}' has no script, run or trigger")
    graph: dict[str, list[str]] = {}
    for name, job in jobs.items():
        for index, needed, optional in _needs(job):
            path = (name, "needs", index)
            if needed not in jobs:
                if not optional and _INPUT not in needed:
                    report.unknown(path, f"job '{name}' needs '{needed}', which is not a job")
                continue
            graph.setdefault(name, []).append(needed)
            if stage_of[needed] > stage_of[name] >= 0:
                later = jobs[needed].get("stage", "test")
                message = f"job '{name}' needs '{needed}', which runs in a later stage ('{later}')"
                report.error(path, message)
        for index, dependency in enumerate(_names(job.get("dependencies"))):
            if dependency not in jobs:
                message = f"job '{name}' depends on '{dependency}', which is not a job"
                report.unknown((name, "dependencies", index), message)
    for cycle in _cycles(graph):
        report.error((cycle[0], "needs"), f"needs form a cycle: {' -> '.join(cycle)}")
    return expanded, report.errors, report.warnings
