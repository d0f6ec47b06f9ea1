"""GitLab's rules for the references between jobs: `needs` (also under `rules:`),
`dependencies` and `environment:on_stop`, as `lib/gitlab/ci/yaml_processor.rb` checks them
(see `gitlab_ci_semantics` for the list and its sources)."""

from __future__ import annotations

import itertools
from typing import Any

from timbel_dagster.pipeline_templates.gitlab_yaml import LoadedYaml
from timbel_dagster.pipeline_templates.results import Issue, issue

INPUT = "$[["  # CI/CD inputs interpolation, resolved by GitLab before these checks


class Report:
    """Errors and warnings at the positions of the file as written."""

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


def names(value: Any) -> list[str]:
    if isinstance(value, str):
        return [value]
    return [v for v in value if isinstance(v, str)] if isinstance(value, list) else []


def _needs(needs: Any) -> list[tuple[int, str, bool, bool]]:
    """(index, job name, optional, names matrix instances) of the needs into this pipeline."""
    found: list[tuple[int, str, bool, bool]] = []
    for index, need in enumerate(needs if isinstance(needs, list) else []):
        if isinstance(need, str):
            found.append((index, need, False, False))
        elif (
            isinstance(need, dict)
            and isinstance(need.get("job"), str)
            and "project" not in need
            and "pipeline" not in need
        ):
            found.append((index, need["job"], need.get("optional") is True, "parallel" in need))
    return found


def instance_names(name: str, job: dict[str, Any]) -> list[str]:
    """The names GitLab gives a parallel job's instances: `name 1/3` for `parallel: 3`,
    `name: [aws, app1]` for each combination of a `parallel: matrix` entry."""
    parallel = job.get("parallel")
    if isinstance(parallel, int) and not isinstance(parallel, bool) and parallel > 0:
        return [f"{name} {i}/{parallel}" for i in range(1, parallel + 1)]
    if not isinstance(parallel, dict) or not isinstance(parallel.get("matrix"), list):
        return []
    found: list[str] = []
    for entry in parallel["matrix"]:
        if isinstance(entry, dict):
            axes = [v if isinstance(v, list) else [v] for v in entry.values()]
            found.extend(
                f"{name}: [{', '.join(str(v) for v in combination)}]"
                for combination in itertools.product(*axes)
            )
    return found


def cycles(graph: dict[str, list[str]]) -> list[list[str]]:
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


def check_needs(
    report: Report, name: str, prefix: tuple[str | int, ...], needs: Any, known: Known
) -> list[str]:
    """Check one `needs` list (a job's or a rule's); the jobs it names."""
    targets: list[str] = []
    counted: dict[str, int] = {}
    for index, needed, optional, by_matrix in _needs(needs):
        path = (name, *prefix, index)
        target = known.job_of(needed)
        if target is None:
            if not (optional or known.interpolated(name, needed)):
                report.unknown(path, f"job '{name}' needs '{needed}', which is not a job")
            continue
        targets.append(target)
        known.check_stage(report, path, name, target, "needs")
        if not by_matrix:
            counted[needed] = counted.get(needed, 0) + 1
            if counted[needed] == 2:
                report.error(path, f"job '{name}' lists need '{needed}' more than once")
    return targets


class Known:
    """The jobs of the file by every name GitLab gives them, and their stages."""

    def __init__(self, jobs: dict[str, dict[str, Any]], stages: list[str]) -> None:
        self.jobs, self.stages = jobs, stages
        self.names = {name: name for name in jobs}
        for name, job in jobs.items():
            self.names.update(dict.fromkeys(instance_names(name, job), name))
        self.stage_of = {
            name: stages.index(job.get("stage", "test")) if job.get("stage", "test") in stages
            else -1
            for name, job in jobs.items()
        }  # fmt: skip

    def job_of(self, name: str) -> str | None:
        return self.names.get(name)

    def interpolated(self, job: str, name: str) -> bool:
        """Names GitLab fills in before its checks: CI/CD inputs, and (since GitLab 17.6)
        the job's own parallel:matrix variables in `needs` and `dependencies`."""
        matrix = isinstance(self.jobs[job].get("parallel"), dict)
        return INPUT in name or (matrix and "$" in name)

    def check_stage(
        self, report: Report, path: tuple[str | int, ...], name: str, target: str, kind: str
    ) -> None:
        if self.stage_of[target] > self.stage_of[name] >= 0:
            later = self.jobs[target].get("stage", "test")
            report.error(
                path,
                f"job '{name}' {kind} '{target}', which runs in a later stage ('{later}'): "
                "GitLab needs it in the current or a prior stage",
            )


def check_on_stop(report: Report, name: str, job: dict[str, Any], known: Known) -> None:
    """`environment:on_stop` as GitLab's validate_on_stop_job! checks it."""
    environment = job.get("environment")
    if not isinstance(environment, dict) or not isinstance(environment.get("on_stop"), str):
        return
    stop, path = environment["on_stop"], (name, "environment", "on_stop")
    target = known.jobs.get(stop)
    if target is None:
        report.unknown(path, f"job '{name}': on_stop job '{stop}' is not defined")
        return
    theirs = target.get("environment")
    their_name = theirs.get("name") if isinstance(theirs, dict) else theirs
    if theirs is None:
        problem = "does not have environment defined"
    elif their_name != environment.get("name"):
        problem = f"has a different environment name ('{their_name}')"
    elif not isinstance(theirs, dict) or theirs.get("action") != "stop":
        problem = "needs to have action stop defined"
    else:
        return
    report.error(path, f"job '{name}': on_stop job '{stop}' {problem}")
