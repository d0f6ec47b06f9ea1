"""The rules GitLab checks beyond the JSON schema: `extends`, stages, `needs`, visible jobs.

Each rule is one GitLab applies to a single file, with the same scope (GitLab source:
`lib/gitlab/ci/yaml_processor.rb` `run_logical_validations!`, `config/extendable/entry.rb`,
`config/entry/jobs.rb`, `config/normalizer.rb`; docs: https://docs.gitlab.com/ci/yaml/):

- `extends` targets exist, form no cycle, and nest at most 11 levels (docs: "extends";
  Extendable::Entry raises when an entry with `extends` has more than 10 ancestors);
- every job's stage is declared (`validate_job_stage!`); without `stages:` the defaults
  build, test, deploy apply; `.pre` and `.post` always exist; a job's default stage is test;
- `needs` (also under `rules:`) and `dependencies` name jobs of the file, in the same or an
  earlier stage (`validate_job_dependency!`: "is not defined in current or prior stages";
  the same stage is allowed since GitLab 14.2); an `optional: true` need may be absent;
  `needs: []` is valid; a parallel job is also named by its instances (`build 1/3`,
  `build: [aws, app1]`, as `Config::Normalizer` expands them); a need listed twice is an
  error (`validate_needs_specification!`); `needs` form no cycle (`Dag`);
- `environment:on_stop` names a job with the same environment and `action: stop`
  (`validate_on_stop_job!`);
- at least one visible job (hidden jobs start with `.`), each with `script`, `run` or
  `trigger` (`Entry::Jobs`, `Entry::Job`).

Jobs and templates from `include:` files are not fetched, so when a file includes others,
references to jobs it does not define are warnings instead of errors.
"""

from __future__ import annotations

from typing import Any

from timbel_dagster.pipeline_templates.gitlab_ci_jobs import (
    INPUT,
    Known,
    Report,
    check_needs,
    check_on_stop,
    cycles,
    names,
)
from timbel_dagster.pipeline_templates.gitlab_yaml import (
    MAX_NODES,
    LoadedYaml,
    YamlTooLargeError,
    resolve_references,
)
from timbel_dagster.pipeline_templates.results import Issue

GLOBAL_KEYWORDS = frozenset(
    {"image", "services", "stages", "types", "before_script", "after_script", "variables",
     "cache", "include", "workflow", "default", "spec"}
)  # fmt: skip
DEFAULT_STAGES = ("build", "test", "deploy")
# Levels of inheritance GitLab accepts: A extends B1 extends ... B11 is the deepest chain.
MAX_EXTENDS_DEPTH = 11


def deep_merge(
    base: dict[str, Any], override: dict[str, Any], budget: list[int] | None = None
) -> dict[str, Any]:
    """GitLab's `extends` merge: mappings merge key by key, anything else is replaced.

    `budget` ([entries left]) is charged for every entry copied; `YamlTooLargeError` when it
    runs out (a large hidden job extended by many jobs is copied into each).
    """
    if budget is not None:
        budget[0] -= len(base) + len(override)
        if budget[0] < 0:
            raise YamlTooLargeError(
                f"extends expands the configuration past the limit of {MAX_NODES:,} values"
            )
    merged = dict(base)
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = deep_merge(merged[key], value, budget)
        else:
            merged[key] = value
    return merged


def expand_extends(config: dict[str, Any], report: Report) -> dict[str, Any]:
    """Every entry with its `extends` parents merged in (parents in order, the job last)."""
    done: dict[str, dict[str, Any]] = {}
    cycles: set[frozenset[str]] = set()
    budget = [MAX_NODES]

    def expand(name: str, chain: tuple[str, ...]) -> dict[str, Any]:
        if name in done:
            return done[name]
        job = config[name]
        base: dict[str, Any] = {}
        for parent in names(job.get("extends")):
            if parent in chain or parent == name:
                cycle = (*chain[chain.index(parent) :], parent) if parent in chain else (name,)
                if frozenset(cycle) not in cycles:
                    cycles.add(frozenset(cycle))
                    report.error((name, "extends"), f"circular extends: {' -> '.join(cycle)}")
            elif not isinstance(config.get(parent), dict):
                report.unknown((name, "extends"), f"'{name}' extends unknown '{parent}'")
            else:
                base = deep_merge(base, expand(parent, (*chain, parent)), budget)
        own = {k: v for k, v in job.items() if k != "extends"}
        done[name] = deep_merge(base, own, budget)
        return done[name]

    expanded = dict(config)
    for name, value in config.items():
        if isinstance(value, dict) and name not in GLOBAL_KEYWORDS:
            expanded[name] = expand(name, (name,))
    _check_depth(config, report)
    return expanded


def _check_depth(config: dict[str, Any], report: Report) -> None:
    """GitLab counts `extends` levels from every entry (Extendable::Entry: an entry with
    `extends` and more than 10 ancestors fails); report the top of each too-deep chain."""
    entries = {n: v for n, v in config.items() if isinstance(v, dict) and n not in GLOBAL_KEYWORDS}
    heights: dict[str, int] = {}

    def height(name: str, path: frozenset[str]) -> int:
        if name not in heights:
            parents = [p for p in names(entries[name].get("extends")) if p in entries]
            heights[name] = max(
                (1 + height(p, path | {name}) for p in parents if p not in path), default=0
            )
        return heights[name]

    extended = {p for entry in entries.values() for p in names(entry.get("extends"))}
    for name in entries:
        if height(name, frozenset()) > MAX_EXTENDS_DEPTH and name not in extended:
            too_deep = f"'{name}': extends nested more than {MAX_EXTENDS_DEPTH} levels"
            report.error((name, "extends"), too_deep)


def _stages(config: dict[str, Any]) -> list[str]:
    declared = config.get("stages", config.get("types"))  # `types`: the old name of `stages`
    if not isinstance(declared, list):
        declared = list(DEFAULT_STAGES)
    flat: list[str] = []
    for entry in declared:  # GitLab flattens one level of nested lists
        flat.extend(names(entry))
    return [*([] if ".pre" in flat else [".pre"]), *flat, *([] if ".post" in flat else [".post"])]


def semantic_issues(
    config: dict[str, Any], loaded: LoadedYaml, lenient: bool
) -> tuple[dict[str, Any], list[Issue], list[str]]:
    """The config with `extends` applied (`!reference`s left in), its errors and warnings.

    The checks see references resolved; unresolvable ones are reported by the caller, which
    resolves the file as written against the returned configuration.
    """
    report = Report(loaded, lenient)
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
    for name, job in jobs.items():
        stage = job.get("stage", "test")
        if isinstance(stage, str) and stage not in stages and INPUT not in stage:
            declared = ", ".join(stages)
            message = f"job '{name}': stage '{stage}' is not declared in stages ({declared})"
            report.unknown((name, "stage") if "stage" in job else (name,), message)
        if not any(k in job for k in ("script", "run", "trigger")):
            report.unknown((name,), f"job '{name}' has no script, run or trigger")
    known = Known(jobs, stages)
    graph: dict[str, list[str]] = {}
    for name, job in jobs.items():
        graph[name] = check_needs(report, name, ("needs",), job.get("needs"), known)
        rules = job.get("rules")
        for index, rule in enumerate(rules if isinstance(rules, list) else []):
            if isinstance(rule, dict):
                check_needs(report, name, ("rules", index, "needs"), rule.get("needs"), known)
        for index, dependency in enumerate(names(job.get("dependencies"))):
            path = (name, "dependencies", index)
            target = known.job_of(dependency)
            if target is not None:
                known.check_stage(report, path, name, target, "depends on")
            elif not known.interpolated(name, dependency):
                report.unknown(path, f"job '{name}' depends on '{dependency}', which is not a job")
        check_on_stop(report, name, job, known)
    for cycle in cycles(graph):
        report.error((cycle[0], "needs"), f"needs form a cycle: {' -> '.join(cycle)}")
    return expanded, report.errors, report.warnings
