"""Declarative Pipeline structure checks over a Jenkinsfile's statements.

Each check is a rule Jenkins' declarative parser (`ModelParser`) or validator
(`ModelValidatorImpl`) enforces before a run, with the same scope: stage names are unique
among the siblings of ONE `stages`/`parallel` block (the same name in two nested blocks, as in
a build on JDK 21 and on JDK 17 with the same inner stages, is valid), `matrix`/`parallel`
cannot sit inside another one, and so on. `jenkinsfile_rules.RULES` names each rule's Jenkins
message key and where Jenkins checks it.
"""

from __future__ import annotations

from timbel_dagster.pipeline_templates.groovy_blocks import Statement, group_statements
from timbel_dagster.pipeline_templates.groovy_lexer import Token
from timbel_dagster.pipeline_templates.jenkinsfile_rules import (
    EMPTY_RULES,
    MATRIX_SECTIONS,
    NEEDS_BLOCK,
    PIPELINE_SECTIONS,
    POST_CONDITIONS,
    RULES,
    STAGE_BODIES,
    STAGE_SECTIONS,
)
from timbel_dagster.pipeline_templates.jenkinsfile_when import when_problems
from timbel_dagster.pipeline_templates.results import Issue, issue


def find_pipeline(statements: list[Statement]) -> list[Statement]:
    """The top-level `pipeline { }` blocks (a declarative Jenkinsfile has exactly one)."""
    return [s for s in statements if s.name == "pipeline" and s.has_block and not s.args]


def stage_name(stage: Statement) -> tuple[str | None, str | None]:
    """`stage('Build')` -> ('Build', None); otherwise (None, the key of the rule it breaks).

    Jenkins takes a string literal or a bare identifier (`stage(Build)`); an interpolated
    GString or any other expression is "Expected string literal".
    """
    args = stage.args
    if args and args[0].text == "(":
        args = args[1:]
    if not args or args[0].text == ")":
        return None, "ModelParser.ExpectedStageName"
    first = args[0]
    alone = len(args) == 1 or args[1].text in (")", ",")
    if first.kind == "string" and first.value is not None and alone:
        return first.value, None
    if first.kind == "ident" and alone:
        return first.text, None
    return None, "ModelParser.ExpectedStringLiteral"


class _Checker:
    def __init__(self) -> None:
        self.issues: list[Issue] = []

    def report(self, token: Token, key: str, **values: object) -> None:
        self.issues.append(issue(token.line, token.column, RULES[key].message(**values)))

    def sections(
        self, owner: str, body: list[Statement], known: tuple[str, ...], unknown: str
    ) -> dict[str, Statement]:
        """Each child a known section, once, as a block where one is needed; the first of
        each by name."""
        seen: dict[str, Statement] = {}
        for child in body:
            if child.name not in known:
                self.report(
                    child.token, unknown, section=child.name, owner=owner, known=", ".join(known)
                )
            elif child.name in seen:
                self.report(
                    child.token,
                    "Parser.MultipleOfSection",
                    section=child.name,
                    owner=owner,
                    first=seen[child.name].token.line,
                )
            else:
                seen[child.name] = child
                if child.name in NEEDS_BLOCK and not child.has_block:
                    self.report(
                        child.token, "ModelParser.ExpectedBlockFor", section=child.name, owner=owner
                    )
        return seen

    def agent(self, section: Statement, owner: str) -> None:
        if section.body is None:
            if [t.text for t in section.args] not in (["any"], ["none"]):
                self.report(section.token, "ModelParser.InvalidAgent", owner=owner)
        elif not section.body:
            self.report(section.token, "ModelParser.ExpectedAgent", owner=owner)
        elif len(section.body) > 1:
            self.report(section.body[1].token, "ModelParser.OneAgentMax", owner=owner)

    def post(self, section: Statement, owner: str) -> None:
        seen: set[str] = set()
        for condition in section.body or []:
            name = condition.name
            if not condition.has_block:
                self.report(
                    condition.token,
                    "ModelParser.InvalidBuildCondition",
                    owner=owner,
                    condition=name,
                )
                continue
            if name not in POST_CONDITIONS:
                self.report(
                    condition.token,
                    "ModelValidatorImpl.InvalidBuildCondition",
                    condition=name,
                    owner=owner,
                    known=", ".join(POST_CONDITIONS),
                )
            if name in seen:
                self.report(
                    condition.token,
                    "ModelValidatorImpl.DuplicateBuildCondition",
                    condition=name,
                    owner=owner,
                )
            seen.add(name)

    def when(self, section: Statement, owner: str) -> None:
        for token, key, values in when_problems(section, owner):
            self.report(token, key, **values)

    def directives(self, present: dict[str, Statement], owner: str) -> None:
        """The directives a pipeline, stage or matrix shares: agent, post, when, input and
        the sections that may not be empty."""
        for name, section in present.items():
            if name == "agent":
                self.agent(section, owner)
            elif section.body is None:
                continue
            elif name in EMPTY_RULES and not section.body:
                self.report(section.token, EMPTY_RULES[name], section=name, owner=owner)
            elif name == "post":
                self.post(section, owner)
            elif name == "when":
                self.when(section, owner)
            elif name == "input" and not any(f.name == "message" for f in section.body):
                self.report(section.token, "ModelValidatorImpl.MissingInputMessage", owner=owner)

    def stages(self, section: Statement, owner: str, nested: bool) -> None:
        """A `stages` or `parallel` block: stages only, at least one, names unique among
        these siblings (and only these)."""
        if section.body is None:
            return
        where = f"{section.name} of {owner}"
        if not section.body:
            self.report(section.token, "ModelValidatorImpl.NoStages", owner=where)
        names: dict[str, Token] = {}
        for child in section.body:
            name = self.stage(child, where, nested)
            if name is None:
                continue
            if name in names:
                self.report(
                    child.token,
                    "ModelValidatorImpl.DuplicateStageName",
                    name=name,
                    owner=where,
                    first=names[name].line,
                )
            names.setdefault(name, child.token)

    def stage(self, stage: Statement, owner: str, nested: bool) -> str | None:
        """Check one stage; its name when it has one. `nested`: inside a parallel or matrix
        (Jenkins' isWithinParallel, passed down through nested `stages`)."""
        if stage.name != "stage":
            self.report(stage.token, "ModelParser.ExpectedStage", owner=owner, found=stage.name)
            return None
        name, problem = stage_name(stage)
        if problem is not None:
            found = " ".join(t.text for t in stage.args) or "nothing"
            self.report(stage.token, problem, owner=owner, found=found)
        label = f'stage "{name}"' if name is not None else "stage"
        if stage.body is None:
            self.report(stage.token, "ModelParser.StageWithoutBlock", name=name or "")
            return name
        present = self.sections(
            label, stage.body, STAGE_SECTIONS, "ModelParser.UnknownStageSection"
        )
        self.directives(present, label)
        kinds = [k for k in STAGE_BODIES if k in present]
        inner = next((k for k in ("matrix", "parallel") if k in present), None)
        # The same order of checks as ModelValidatorImpl.validateElement(ModelASTStage).
        if nested and inner is not None:
            self.report(
                present[inner].token,
                "ModelValidatorImpl.NoNestedWithinNestedStages",
                kind=inner,
                name=name or "",
            )
        elif len(kinds) > 1:
            self.report(
                stage.token,
                "ModelValidatorImpl.TwoOfStepsStagesParallel",
                name=name or "",
                found=", ".join(kinds),
            )
        elif not kinds:
            self.report(stage.token, "ModelValidatorImpl.NothingForStage", name=name or "")
        elif inner is not None:
            for directive, key in (
                ("agent", "AgentInNestedStages"),
                ("tools", "ToolsInNestedStages"),
            ):
                if directive in present:
                    self.report(
                        present[directive].token, f"ModelValidatorImpl.{key}", name=name or ""
                    )
        steps = present.get("steps")
        if steps is not None and steps.body == []:
            self.report(steps.token, "ModelValidatorImpl.NoSteps", name=name or "")
        if "stages" in present:
            self.stages(present["stages"], label, nested)
        if "parallel" in present:
            self.stages(present["parallel"], label, True)
        if "matrix" in present:
            self.matrix(present["matrix"], label)
        return name

    def matrix(self, section: Statement, owner: str) -> None:
        if section.body is None:
            return
        label = f"matrix of {owner}"
        present = self.sections(label, section.body, MATRIX_SECTIONS, "Parser.UndefinedSection")
        self.directives(present, label)
        for required in ("axes", "stages"):
            if required not in present:
                self.report(
                    section.token,
                    "ModelValidatorImpl.RequiredSection",
                    section=required,
                    owner=label,
                )
        axes = present.get("axes")
        if axes is not None and axes.body is not None:
            if not axes.body:
                self.report(axes.token, "ModelValidatorImpl.NoAxes", owner=label)
            # Jenkins parses every child of `axes` as an axis block whatever its name.
            for axis in axes.body:
                if not axis.has_block:
                    self.report(
                        axis.token,
                        "ModelParser.ExpectedBlockFor",
                        section="axis",
                        owner=f"axes of {label}",
                    )
        if "stages" in present:
            self.stages(present["stages"], label, True)

    def pipeline(self, pipeline: Statement) -> None:
        body = pipeline.body or []
        present = self.sections("pipeline", body, PIPELINE_SECTIONS, "Parser.UndefinedSection")
        self.directives(present, "pipeline")
        for required in ("agent", "stages"):
            if required not in present:
                self.report(
                    pipeline.token,
                    "ModelValidatorImpl.RequiredSection",
                    section=required,
                    owner="pipeline",
                )
        if "stages" in present:
            self.stages(present["stages"], "pipeline", False)


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
        checker.report(extra.token, "Utils.OnlyOnePipeline", first=first)
    checker.pipeline(pipelines[0])
    return True, checker.issues
