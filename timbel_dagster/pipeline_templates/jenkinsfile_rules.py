"""The declarative rules Timbel checks, each one a rule Jenkins itself enforces.

Every rule is keyed by the message key Jenkins reports it with (pipeline-model-definition's
`Messages.properties`, read at jenkinsci/pipeline-model-definition-plugin commit 42c9dc3e,
2025-11-10) and names the place Jenkins checks it: the parser (`ModelParser.groovy`, before
the model exists) or the validator (`ModelValidatorImpl.groovy`, on the model). The wording
follows Jenkins' message; Timbel adds where (which stage, first occurrence). A check Jenkins
does not make is not a rule here: a false positive on a file Jenkins runs is a defect.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

_PARSER = "ModelParser"
_VALIDATOR = "ModelValidatorImpl"

# The `switch (name)` cases of ModelParser.parsePipelineStep / parseStage / parseMatrix.
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
# The @Symbol names of BuildCondition extensions (model/conditions/*.groovy), in their order.
POST_CONDITIONS = (
    "always", "changed", "fixed", "regression", "aborted", "success", "unsuccessful",
    "unstable", "failure", "notBuilt", "cleanup",
)  # fmt: skip
# The @Symbol names of DeclarativeStageConditional extensions (when/impl/*.java).
WHEN_CONDITIONS = (
    "branch", "buildingTag", "changelog", "changeset", "changeRequest", "environment", "equals",
    "expression", "tag", "not", "allOf", "anyOf", "isRestartedRun", "triggeredBy",
)  # fmt: skip
# Options of `when` itself (ModelParser.parseWhen), not conditions.
WHEN_OPTIONS = ("beforeAgent", "beforeInput", "beforeOptions")
# Sections that are blocks; `agent any`, `failFast true` and `beforeAgent true` are not.
NEEDS_BLOCK = {
    "environment", "options", "parameters", "triggers", "tools", "stages", "post", "libraries",
    "when", "input", "steps", "parallel", "matrix", "axes", "excludes",
}  # fmt: skip
# An empty block of these is an error in Jenkins' validator (`when` and `post` are checked
# with what they hold).
EMPTY_RULES = {
    "options": "ModelValidatorImpl.EmptySection",
    "parameters": "ModelValidatorImpl.EmptySection",
    "triggers": "ModelValidatorImpl.EmptySection",
    "libraries": "ModelValidatorImpl.EmptySection",
    "post": "ModelValidatorImpl.EmptySection",
    "environment": "ModelValidatorImpl.NoEnvVars",
    "tools": "ModelValidatorImpl.NoTools",
}


@dataclass(frozen=True)
class Rule:
    """One Jenkins rule: its message key, where Jenkins checks it, and our message template."""

    key: str
    checked_in: str
    template: str

    def message(self, **values: object) -> str:
        return self.template.format(**values)

    def matches(self, message: str) -> bool:
        """Whether `message` is this rule's message, whatever the placeholders hold."""
        parts = re.split(r"\{\w+\}", self.template.replace("{{", "{").replace("}}", "}"))
        return re.fullmatch(".+?".join(re.escape(p) for p in parts), message) is not None


def _rule(key: str, checked_in: str, template: str) -> Rule:
    return Rule(key, checked_in, template)


RULES: dict[str, Rule] = {
    r.key: r
    for r in (
        # Utils.groovy throws this at run time for a second pipeline { } in one run.
        _rule("Utils.OnlyOnePipeline", "Utils.groovy (pipeline step)",
              "Only one pipeline {{ ... }} block can be executed in a single run "
              "(first at line {first})"),
        _rule("ModelValidatorImpl.RequiredSection",
              f"{_VALIDATOR}.validateElement(ModelASTPipelineDef / ModelASTMatrix)",
              'Missing required section "{section}" in {owner}'),
        _rule("Parser.MultipleOfSection", f"{_PARSER}.parsePipelineStep / parseStage / parseMatrix",
              "Multiple occurrences of the {section} section in {owner} (first at line {first})"),
        _rule("Parser.UndefinedSection", f"{_PARSER}.parsePipelineStep / parseMatrix",
              'Undefined section "{section}" in {owner} (valid sections: {known})'),
        _rule("ModelParser.UnknownStageSection", f"{_PARSER}.parseStage",
              'Unknown stage section "{section}" in {owner}: steps in a stage must be in a '
              "'steps' block (valid sections: {known})"),
        _rule("ModelParser.ExpectedBlockFor", f"{_PARSER}.parseStages / parseAxis / ...",
              "Expected a block for {section} in {owner}"),
        _rule("ModelParser.InvalidAgent", f"{_PARSER}.parseAgent",
              'Only "agent none", "agent any" or "agent {{...}}" are allowed ({owner})'),
        _rule("ModelParser.ExpectedAgent", f"{_PARSER}.parseAgent",
              "Expected an agent in the agent block of {owner}"),
        _rule("ModelParser.OneAgentMax", f"{_PARSER}.parseAgent",
              "Only one agent type is allowed per agent section ({owner})"),
        _rule("ModelParser.InvalidBuildCondition", f"{_PARSER}.parseBuildCondition",
              "The 'post' section of {owner} can only contain build condition names with code "
              'blocks: "{condition}" has none'),
        _rule("ModelValidatorImpl.InvalidBuildCondition",
              f"{_VALIDATOR}.validateElement(ModelASTBuildCondition)",
              'Invalid condition "{condition}" in post of {owner} - valid conditions are {known}'),
        _rule("ModelValidatorImpl.DuplicateBuildCondition",
              f"{_VALIDATOR}.validateElement(ModelASTBuildConditionsContainer)",
              'Duplicate build condition name: "{condition}" in post of {owner}'),
        _rule("ModelValidatorImpl.EmptySection",
              f"{_VALIDATOR}.validateElement(post / options / parameters / triggers / libraries)",
              "{section} can not be empty ({owner})"),
        _rule("ModelValidatorImpl.NoEnvVars", f"{_VALIDATOR}.validateElement(ModelASTEnvironment)",
              "No variables specified for environment ({owner})"),
        _rule("ModelValidatorImpl.NoTools", f"{_VALIDATOR}.validateElement(ModelASTTools)",
              "No tools specified ({owner})"),
        _rule("ModelValidatorImpl.EmptyWhen", f"{_VALIDATOR}.validateElement(ModelASTWhen)",
              "Empty when closure in {owner}, remove the property or add some content"),
        _rule("ModelValidatorImpl.UnknownWhenConditional",
              f"{_VALIDATOR}.validateElement(ModelASTWhenCondition)",
              "Unknown conditional {condition} in {owner}. Valid conditionals are: {known}"),
        # Nested when conditions (allOf, anyOf: one or more; not: exactly one).
        _rule("ModelValidatorImpl.NestedWhenNoArgs",
              f"{_VALIDATOR}.validateElement(ModelASTWhenCondition)",
              'No additional arguments are allowed for children when condition "{condition}" '
              "(in {owner}): it takes a block of conditions"),
        _rule("ModelValidatorImpl.NestedWhenWithoutChildren",
              f"{_VALIDATOR}.validateElement(ModelASTWhenCondition)",
              'Nested when condition "{condition}" requires at least one child condition '
              "(in {owner})"),
        _rule("ModelValidatorImpl.NestedWhenWrongChildrenCount",
              f"{_VALIDATOR}.validateElement(ModelASTWhenCondition)",
              'Nested when condition "{condition}" requires exactly {count} child condition(s) '
              "(in {owner})"),
        _rule("ModelValidatorImpl.NoNestedWhenAllowed",
              f"{_VALIDATOR}.validateElement(ModelASTWhenCondition)",
              'No children when conditions are allowed for when condition "{condition}" '
              "(in {owner})"),
        _rule("ModelValidatorImpl.MissingInputMessage",
              f"{_VALIDATOR}.validateElement(ModelASTStageInput)",
              "No message specified for input ({owner})"),
        _rule("ModelValidatorImpl.NoStages", f"{_VALIDATOR}.validateElement(ModelASTStages)",
              "No stages specified in {owner}"),
        # Siblings of ONE stages/parallel block only (ModelASTParallel and the matrix's
        # stages are validated as ModelASTStages): the same name in two blocks is fine.
        _rule("ModelValidatorImpl.DuplicateStageName",
              f"{_VALIDATOR}.validateElement(ModelASTStages)",
              'Duplicate stage name: "{name}" in {owner} (first at line {first})'),
        _rule("ModelParser.ExpectedStage", f"{_PARSER}.parseStage",
              'Expected a stage in {owner}, found "{found}"'),
        _rule("ModelParser.ExpectedStageName", f"{_PARSER}.parseStage",
              "Expected a stage name but did not find any ({owner})"),
        _rule("ModelParser.ExpectedStringLiteral", f"{_PARSER}.parseStage (parseStringLiteral)",
              "Expected string literal as the stage name in {owner}: declarative stage names "
              "cannot be interpolated ({found})"),
        _rule("ModelParser.StageWithoutBlock", f"{_PARSER}.parseStage",
              'Stage "{name}" does not have a block'),
        _rule("ModelValidatorImpl.NothingForStage",
              f"{_VALIDATOR}.validateElement(ModelASTStage)",
              'Expected one of "steps", "stages", "parallel" or "matrix" for stage "{name}"'),
        _rule("ModelValidatorImpl.TwoOfStepsStagesParallel",
              f"{_VALIDATOR}.validateElement(ModelASTStage)",
              'Only one of "matrix", "parallel", "stages", or "steps" allowed for stage "{name}" '
              "(found {found})"),
        _rule("ModelValidatorImpl.NoNestedWithinNestedStages",
              f"{_VALIDATOR}.validateElement(ModelASTStage, isWithinParallel)",
              '"{kind}" in stage "{name}": "matrix" or "parallel" cannot be nested inside '
              'another "matrix" or "parallel"'),
        _rule("ModelValidatorImpl.AgentInNestedStages",
              f"{_VALIDATOR}.validateElement(ModelASTStage)",
              '"agent" is not allowed in stage "{name}" as it contains parallel or matrix stages'),
        _rule("ModelValidatorImpl.ToolsInNestedStages",
              f"{_VALIDATOR}.validateElement(ModelASTStage)",
              '"tools" is not allowed in stage "{name}" as it contains parallel or matrix stages'),
        _rule("ModelValidatorImpl.NoSteps", f"{_VALIDATOR}.validateElement(ModelASTBranch)",
              'No steps specified in the steps block of stage "{name}"'),
        _rule("ModelValidatorImpl.NoAxes", f"{_VALIDATOR}.validateElement(ModelASTAxisContainer)",
              "No axis directives specified in {owner}"),
    )
}  # fmt: skip


def rule_for(message: str) -> Rule | None:
    """The rule a message was reported under, or None."""
    return next((r for r in RULES.values() if r.matches(message)), None)
