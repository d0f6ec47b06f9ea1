"""Declarative Pipeline structure checks over a Jenkinsfile's statements.

These follow the rules Jenkins' declarative validator enforces before a run (pipeline-model-
definition's ModelValidatorImpl): one `agent` and one `stages` at pipeline level, every stage
named and holding exactly one of steps/stages/parallel/matrix, known section, `post` and
`when` names, stage names unique.
"""

from __future__ import annotations

from timbel_dagster.pipeline_templates.groovy_blocks import Statement, group_statements
from timbel_dagster.pipeline_templates.groovy_lexer import Token
from timbel_dagster.pipeline_templates.results import Issue, issue

PIPELINE_SECTIONS = (
    "agent", "environment", "options", "parameters", "triggers", "tools", "stages", "post",
    "libraries",
)  # fmt: skip
STAGE_SECTIONS = (
    "agent", "environment", "options", "tools", "when", "input", "post", "steps", "stages",
    "parallel", "matrix", "failFast",
)  # fmt: skip
MATRIX_SECTIONS = (
    "axes", "excludes", "stages", "agent", "environment", "options", "post", "when", "tools",
    "input",
)  # fmt: skip
STAGE_BODIES = ("steps", "stages", "parallel", "matrix")
POST_CONDITIONS = (
    "always", "changed", "fixed", "regression", "aborted", "success", "unsuccessful",
    "unstable", "failure", "notBuilt", "cleanup",
)  # fmt: skip
WHEN_CONDITIONS = (
    "branch", "buildingTag", "changelog", "changeset", "changeRequest", "environment", "equals",
    "expression", "tag", "not", "allOf", "anyOf", "isRestartedRun", "triggeredBy",
    "beforeAgent", "beforeInput", "beforeOptions",
)  # fmt: skip
# Sections that are blocks; `agent any`, `failFast true` and `beforeAgent true` are not.
_NEEDS_BLOCK = {
    "environment", "options", "parameters", "triggers", "tools", "stages", "post", "libraries",
    "when", "input", "steps", "parallel", "matrix", "axes", "excludes",
}  # fmt: skip


def at(token: Token, message: str) -> Issue:
    return issue(token.line, token.column, message)


def find_pipeline(statements: list[Statement]) -> list[Statement]:
    """The top-level `pipeline { }` blocks (a declarative Jenkinsfile has exactly one)."""
    return [s for s in statements if s.name == "pipeline" and s.has_block and not s.args]


class _Checker:
    def __init__(self) -> None:
        self.issues: list[Issue] = []
        self.stage_names: dict[str, Token] = {}

    def error(self, token: Token, message: str) -> None:
        self.issues.append(at(token, message))

    def sections(self, owner: str, body: list[Statement], known: tuple[str, ...]) -> None:
        """Each child a known section, a block where one is needed, and none twice."""
        seen: dict[str, Statement] = {}
        for child in body:
            if child.name not in known:
                self.error(
                    child.token,
                    f"unknown section '{child.name}' in {owner} (expected one of "
                    f"{', '.join(known)})",
                )
                continue
            if child.name in seen:
                first = seen[child.name].token
                self.error(
                    child.token,
                    f"section '{child.name}' appears twice in {owner} (first at line {first.line})",
                )
            seen[child.name] = child
            if child.name in _NEEDS_BLOCK and not child.has_block:
                self.error(child.token, f"section '{child.name}' in {owner} needs a {{ }} block")

    def agent(self, section: Statement, owner: str) -> None:
        if section.has_block:
            if not section.body:
                self.error(section.token, f"agent of {owner} is an empty block")
            return
        words = [t.text for t in section.args]
        if words not in (["any"], ["none"]):
            self.error(section.token, f"agent of {owner} must be 'any', 'none' or a {{ }} block")

    def post(self, section: Statement, owner: str) -> None:
        seen: set[str] = set()
        for condition in section.body or []:
            if condition.name not in POST_CONDITIONS:
                self.error(
                    condition.token,
                    f"unknown post condition '{condition.name}' in {owner} (expected one of "
                    f"{', '.join(POST_CONDITIONS)})",
                )
            elif condition.name in seen:
                self.error(condition.token, f"post condition '{condition.name}' appears twice")
            elif not condition.has_block:
                self.error(condition.token, f"post condition '{condition.name}' needs a block")
            seen.add(condition.name)

    def when(self, section: Statement, owner: str) -> None:
        for condition in section.body or []:
            if condition.name not in WHEN_CONDITIONS:
                self.error(
                    condition.token,
                    f"unknown when condition '{condition.name}' in {owner} (expected one of "
                    f"{', '.join(WHEN_CONDITIONS)})",
                )

    def common(self, body: list[Statement], owner: str) -> None:
        for section in body:
            if section.name == "agent":
                self.agent(section, owner)
            elif section.name == "post" and section.has_block:
                self.post(section, owner)
            elif section.name == "when" and section.has_block:
                self.when(section, owner)

    def stages(self, section: Statement, owner: str, in_matrix: bool, in_parallel: bool) -> None:
        if section.body is None:
            return
        if not section.body:
            self.error(section.token, f"stages of {owner} has no stage")
        for child in section.body:
            self.stage(child, owner, in_matrix, in_parallel)

    def stage(self, stage: Statement, owner: str, in_matrix: bool, in_parallel: bool) -> None:
        if stage.name != "stage":
            self.error(stage.token, f"expected stage('name') in {owner}, found '{stage.name}'")
            return
        name = stage.string_argument()
        if name is None:
            self.error(stage.token, "stage needs a name: stage('name')")
            return
        label = f"stage '{name}'"
        if not in_matrix:
            if name in self.stage_names:
                first = self.stage_names[name]
                self.error(
                    stage.token, f"duplicate stage name '{name}' (first at line {first.line})"
                )
            self.stage_names.setdefault(name, stage.token)
        if stage.body is None:
            self.error(stage.token, f"{label} needs a {{ }} block")
            return
        self.sections(label, stage.body, STAGE_SECTIONS)
        self.common(stage.body, label)
        kinds = [s for s in stage.body if s.name in STAGE_BODIES]
        if len(kinds) != 1:
            found = ", ".join(s.name for s in kinds) or "none of them"
            self.error(
                stage.token,
                f"{label} must have exactly one of steps, stages, parallel or matrix "
                f"(found {found})",
            )
        for part in kinds:
            if part.name in ("parallel", "matrix") and (in_parallel or in_matrix):
                self.error(part.token, f"{label}: {part.name} cannot be nested in parallel/matrix")
            if part.name == "steps" and part.body == []:
                self.error(part.token, f"{label}: steps block is empty")
            elif part.name == "stages":
                self.stages(part, label, in_matrix, in_parallel)
            elif part.name == "parallel":
                self.parallel(part, label, in_matrix)
            elif part.name == "matrix":
                self.matrix(part, label)

    def parallel(self, section: Statement, owner: str, in_matrix: bool) -> None:
        branches = [s for s in section.body or [] if s.name != "failFast"]
        if section.body is not None and not branches:
            self.error(section.token, f"parallel of {owner} has no stage")
        for child in branches:
            self.stage(child, f"parallel of {owner}", in_matrix, True)

    def matrix(self, section: Statement, owner: str) -> None:
        if section.body is None:
            return
        label = f"matrix of {owner}"
        self.sections(label, section.body, MATRIX_SECTIONS)
        self.common(section.body, label)
        names = {s.name: s for s in section.body}
        for required in ("axes", "stages"):
            if required not in names:
                self.error(section.token, f"{label} has no '{required}'")
        axes = names.get("axes")
        if axes is not None and axes.body is not None:
            if not any(a.name == "axis" for a in axes.body):
                self.error(axes.token, f"axes of {label} has no axis")
            for axis in axes.body:
                if axis.name != "axis":
                    self.error(axis.token, f"expected axis {{ }} in axes, found '{axis.name}'")
        if "stages" in names:
            self.stages(names["stages"], label, True, False)

    def pipeline(self, pipeline: Statement) -> None:
        body = pipeline.body or []
        self.sections("pipeline", body, PIPELINE_SECTIONS)
        self.common(body, "pipeline")
        names = [s.name for s in body]
        for required in ("agent", "stages"):
            if required not in names:
                self.error(pipeline.token, f"pipeline has no '{required}' section")
        for section in body:
            if section.name == "stages":
                self.stages(section, "pipeline", False, False)


def declarative_issues(tokens: list[Token]) -> tuple[bool, list[Issue]]:
    """Whether the file is a declarative pipeline, and its structure problems.

    Scripted pipelines (`node { }`, shared-library calls) are not declarative: (False, []).
    """
    pipelines = find_pipeline(group_statements(tokens))
    if not pipelines:
        return False, []
    checker = _Checker()
    first = pipelines[0].token.line
    for extra in pipelines[1:]:
        checker.error(extra.token, f"more than one pipeline block (first at line {first})")
    checker.pipeline(pipelines[0])
    return True, checker.issues
