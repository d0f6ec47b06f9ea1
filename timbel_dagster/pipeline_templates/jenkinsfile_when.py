"""A declarative `when` as Jenkins checks it (ModelParser.parseWhen / parseWhenContent, then
ModelValidatorImpl.validateElement(ModelASTWhen / ModelASTWhenCondition)).

`beforeAgent`, `beforeInput` and `beforeOptions` are options of the top-level `when` only;
at least one condition is required; every condition, nested ones too, is a known one;
`allOf` and `anyOf` take one or more nested conditions and `not` exactly one, with no
arguments of their own; the other conditions take no nested conditions (`expression { }`
holds code, not conditions).
"""

from __future__ import annotations

from typing import Any

from timbel_dagster.pipeline_templates.groovy_blocks import Statement
from timbel_dagster.pipeline_templates.groovy_lexer import Token
from timbel_dagster.pipeline_templates.jenkinsfile_rules import WHEN_CONDITIONS, WHEN_OPTIONS

# getAllowedChildrenCount() of AllOfConditional, AnyOfConditional (-1: one or more) and
# NotConditional (exactly 1); every other conditional allows none.
NESTED = {"allOf": -1, "anyOf": -1, "not": 1}

Problem = tuple[Token, str, dict[str, Any]]


def when_problems(section: Statement, owner: str) -> list[Problem]:
    """(where, rule key, message values) of each problem of a `when` block."""
    conditions = [c for c in section.body or [] if c.name not in WHEN_OPTIONS]
    if not conditions:
        return [(section.token, "ModelValidatorImpl.EmptyWhen", {"owner": owner})]
    problems: list[Problem] = []
    for condition in conditions:
        _condition(condition, owner, problems)
    return problems


def _has_arguments(condition: Statement) -> bool:
    return any(t.text not in ("(", ")") for t in condition.args)


def _condition(condition: Statement, owner: str, problems: list[Problem]) -> None:
    name, token = condition.name, condition.token
    values: dict[str, Any] = {"condition": name, "owner": owner}
    if name not in WHEN_CONDITIONS:
        known = ", ".join(WHEN_CONDITIONS)
        problems.append(
            (token, "ModelValidatorImpl.UnknownWhenConditional", {**values, "known": known})
        )
        return
    allowed = NESTED.get(name, 0)
    children = condition.body or []
    if allowed == 0:
        if children and name != "expression":
            problems.append((token, "ModelValidatorImpl.NoNestedWhenAllowed", values))
    elif condition.body is None or _has_arguments(condition):
        problems.append((token, "ModelValidatorImpl.NestedWhenNoArgs", values))
    elif allowed < 0 and not children:
        problems.append((token, "ModelValidatorImpl.NestedWhenWithoutChildren", values))
    elif allowed > 0 and len(children) != allowed:
        key = "ModelValidatorImpl.NestedWhenWrongChildrenCount"
        problems.append((token, key, {**values, "count": allowed}))
    else:
        for child in children:
            _condition(child, owner, problems)
