"""Jenkinsfile validation: the real Groovy compiler (one JVM for the whole module's files),
the declarative structure rules, and the labelled fallback when groovy is missing."""

from __future__ import annotations

import stat
from pathlib import Path
from typing import Any

import pytest

from tests.pipeline_templates.conftest import FIXTURES
from tests.pipeline_templates.jenkinsfile_cases import STRUCTURE_ERRORS, SYNTAX_ERRORS, VALID_SHAPES
from timbel_dagster.pipeline_templates import jenkinsfile_check
from timbel_dagster.pipeline_templates.groovy_lexer import balance_issues, tokenize
from timbel_dagster.pipeline_templates.jenkinsfile_check import (
    COMPILER,
    FALLBACK,
    GROOVY_MISSING,
    GroovyError,
    check_jenkinsfiles,
    jvm_launches,
)
from timbel_dagster.pipeline_templates.jenkinsfile_rules import RULES, rule_for
from timbel_dagster.pipeline_templates.jenkinsfile_structure import declarative_issues

# One worker builds the module fixture (one JVM for the whole batch), not each (tests/conftest.py).
pytestmark = pytest.mark.xdist_group("jenkinsfile_check")

REAL = sorted(FIXTURES.glob("*.Jenkinsfile"))
UNICODE = {
    "bäu-ok": ("pipeline {\n  agent any\n  stages {\n    stage('Bäu ✓') {\n"
               "      steps { echo 'grüße' }\n    }\n  }\n}\n", []),
    "bäu-broken": ("def gruß = 'ä' +\n", [(2, 1)]),
}  # fmt: skip
SCRIPTED = {
    "android-flavor-scripted",
    "global-function",
    "nodejs-scripted",
    "parallel-from-list",
}


@pytest.fixture(scope="module")
def compiled(groovy: str, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """Every fixture and case of this module checked by ONE groovy JVM, in the C locale with
    non-ASCII names and text (sources travel as UTF-8 JSON, not as file names)."""
    folder = tmp_path_factory.mktemp("jenkinsfiles") / "ünïcode"
    folder.mkdir()
    paths = list(REAL)
    sources = {
        name: case[0] for name, case in {**SYNTAX_ERRORS, **STRUCTURE_ERRORS, **UNICODE}.items()
    }
    for name, source in {**sources, **VALID_SHAPES}.items():
        path = folder / f"{name}.Jenkinsfile"
        path.write_text(source, encoding="utf-8")
        paths.append(path)
    before = jvm_launches()
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("LC_ALL", "C")
        patch.setenv("LANG", "C")
        results = check_jenkinsfiles(paths, groovy)
    return {
        "launches": jvm_launches() - before,
        "count": len(paths),
        "by_name": {Path(r["path"]).name.removesuffix(".Jenkinsfile"): r for r in results},
    }


def test_one_jvm_checks_the_whole_batch(compiled: dict[str, Any]) -> None:
    cases = len(SYNTAX_ERRORS) + len(STRUCTURE_ERRORS) + len(UNICODE) + len(VALID_SHAPES)
    assert compiled["count"] == len(REAL) + cases >= 30
    assert compiled["launches"] == 1


@pytest.mark.parametrize("name", UNICODE)
def test_non_ascii_names_and_text(compiled: dict[str, Any], name: str) -> None:
    checked = compiled["by_name"][name]
    assert checked["checker"] == COMPILER
    assert [(e["line"], e["column"]) for e in checked["errors"]] == UNICODE[name][1]


@pytest.mark.parametrize("path", REAL, ids=lambda p: p.stem)
def test_real_jenkinsfiles_pass(compiled: dict[str, Any], path: Path) -> None:
    checked = compiled["by_name"][path.stem]
    assert checked["errors"] == []
    assert checked["valid"] and checked["checker"] == COMPILER
    if path.stem in SCRIPTED:
        assert checked["kind"] == "jenkinsfile-scripted"
        assert "declarative checks skipped" in checked["warnings"][0]
    else:
        assert (checked["kind"], checked["warnings"]) == ("jenkinsfile", [])


@pytest.mark.parametrize("name", SYNTAX_ERRORS)
def test_syntax_errors_at_the_compilers_position(compiled: dict[str, Any], name: str) -> None:
    _, line, column, fragment = SYNTAX_ERRORS[name]
    checked = compiled["by_name"][name]
    assert not checked["valid"]
    assert [(e["line"], e["column"]) for e in checked["errors"]] == [(line, column)]
    assert fragment in checked["errors"][0]["message"]
    assert "fix the syntax errors first" in checked["warnings"][-1]


@pytest.mark.parametrize("name", STRUCTURE_ERRORS)
def test_structure_errors_are_valid_groovy(compiled: dict[str, Any], name: str) -> None:
    """The compiler accepts these; only the declarative rules reject them."""
    checked = compiled["by_name"][name]
    assert checked["kind"] == "jenkinsfile" and not checked["valid"]
    expected = STRUCTURE_ERRORS[name][1]
    assert [(e["line"], e["column"]) for e in checked["errors"]] == [
        (line, col) for line, col, _ in expected
    ]


@pytest.mark.parametrize("name", STRUCTURE_ERRORS)
def test_declarative_structure(name: str) -> None:
    """Each case breaks the Jenkins rule its key names (see the comment above the case in
    jenkinsfile_cases.py for the ModelParser / ModelValidatorImpl method), at that place."""
    source, expected = STRUCTURE_ERRORS[name]
    declarative, problems = declarative_issues(tokenize(source)[0])
    assert declarative
    ordered = sorted(problems, key=lambda p: (p["line"], p["column"]))
    assert len(ordered) == len(expected), ordered
    for (line, column, key), problem in zip(expected, ordered, strict=True):
        assert (problem["line"], problem["column"]) == (line, column)
        assert RULES[key].matches(problem["message"]), (key, problem["message"])


def test_every_rule_has_a_case() -> None:
    """A test per rule: every rule Timbel reports is exercised by a case citing it."""
    cited = {key for _, expected in STRUCTURE_ERRORS.values() for *_, key in expected}
    assert cited == set(RULES)


def test_every_rule_is_a_jenkins_message_key() -> None:
    """Rules are keyed by pipeline-model-definition's Messages.properties keys (or, for the
    one run-time check, Utils.groovy) and name the parser or validator method."""
    for key, rule in RULES.items():
        assert key.split(".")[0] in ("ModelParser", "ModelValidatorImpl", "Parser", "Utils")
        assert rule.checked_in.split(".")[0] in ("ModelParser", "ModelValidatorImpl", "Utils")


@pytest.mark.parametrize(
    ("message", "key"),
    [
        ('Duplicate stage name: "Build" in stages of pipeline (first at line 4)',
         "ModelValidatorImpl.DuplicateStageName"),
        ('Missing required section "stages" in pipeline', "ModelValidatorImpl.RequiredSection"),
        ("No stages specified in parallel of stage \"Checks\"", "ModelValidatorImpl.NoStages"),
        ("something else entirely", None),
    ],
)  # fmt: skip
def test_messages_keep_jenkins_wording(message: str, key: str | None) -> None:
    found = rule_for(message)
    assert (found.key if found else None) == key


@pytest.mark.parametrize("name", VALID_SHAPES)
def test_valid_declarative_shapes_pass(compiled: dict[str, Any], name: str) -> None:
    """Shapes Jenkins runs (same stage names in different stages/parallel/matrix blocks,
    failFast beside parallel, nested when conditions, stage agents) are not reported."""
    assert declarative_issues(tokenize(VALID_SHAPES[name])[0]) == (True, [])
    checked = compiled["by_name"][name]
    assert (checked["valid"], checked["kind"], checked["errors"]) == (True, "jenkinsfile", [])


def test_errors_are_sorted_and_one_based(compiled: dict[str, Any]) -> None:
    errors = compiled["by_name"]["steps-outside-steps"]["errors"]
    assert [(e["line"], e["column"]) for e in errors] == [(4, 9), (5, 13)]


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ("sh 'a { b'\nx = \"${ [1].collect { it } }\"\n", []),
        ("def r = /a{2}\\/b/\nx = 4 / 2 / 1\n", []),
        ("// {\n/* ( */ y = $/ } $$ /$\n", []),
        ("foo(1, [2, 3)\n", [(1, 13, "')' does not match '[' opened at line 1, column 8")]),
        ("node {\n  x()\n", [(1, 6, "'{' is never closed")]),
        ("x = 1 }\n", [(1, 7, "'}' closes nothing")]),
    ],
)
def test_tokeniser_respects_strings_and_comments(
    source: str, expected: list[tuple[int, int, str]]
) -> None:
    tokens, unterminated = tokenize(source)
    assert unterminated == []
    assert [(i["line"], i["column"], i["message"]) for i in balance_issues(tokens)] == expected


def test_fallback_without_groovy_is_labelled(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setattr(jenkinsfile_check, "find_groovy", lambda: None)
    before = jvm_launches()
    broken = tmp_path / "broken.Jenkinsfile"
    broken.write_text(SYNTAX_ERRORS["triple-quoted-not-closed"][0], encoding="utf-8")
    results = check_jenkinsfiles([*REAL, broken])
    assert jvm_launches() == before
    assert {r["checker"] for r in results} == {FALLBACK}
    assert all(r["warnings"][0] == GROOVY_MISSING for r in results)
    assert "NOT compiled" in GROOVY_MISSING
    assert all(r["valid"] for r in results[:-1])
    assert results[-1]["errors"] == [
        {"line": 6, "column": 20, "message": 'triple-quoted string starting with """ is not closed'}
    ]


def test_fallback_still_checks_declarative_structure(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setattr(jenkinsfile_check, "find_groovy", lambda: None)
    path = tmp_path / "dup.Jenkinsfile"
    path.write_text(STRUCTURE_ERRORS["duplicate-stage-names"][0], encoding="utf-8")
    (checked,) = check_jenkinsfiles([path])
    assert checked["checker"] == FALLBACK
    assert [(e["line"], e["column"]) for e in checked["errors"]] == [(9, 9)]


def test_empty_file_is_an_error(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setattr(jenkinsfile_check, "find_groovy", lambda: None)
    path = tmp_path / "Jenkinsfile"
    path.write_text("\n  \n", encoding="utf-8")
    (checked,) = check_jenkinsfiles([path])
    assert checked["errors"] == [{"line": 1, "column": 1, "message": "the file is empty"}]


def test_a_groovy_that_cannot_run_raises(tmp_path: Path) -> None:
    broken = tmp_path / "groovy"
    broken.write_text("#!/bin/sh\necho 'JAVA_HOME is not defined correctly' >&2\nexit 1\n")
    broken.chmod(broken.stat().st_mode | stat.S_IEXEC)
    with pytest.raises(GroovyError, match="JAVA_HOME is not defined correctly"):
        check_jenkinsfiles([REAL[0]], str(broken))


def test_missing_file_is_a_lookup_error(tmp_path: Path) -> None:
    with pytest.raises(LookupError, match=r"no-such\.Jenkinsfile"):
        check_jenkinsfiles([tmp_path / "no-such.Jenkinsfile"], "groovy")
