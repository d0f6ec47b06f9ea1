""".gitlab-ci.yml validation: GitLab's schema with positions, `!reference`, anchors and merge
keys resolved as GitLab does, and GitLab's stage / needs / extends rules."""

from __future__ import annotations

import textwrap
from typing import Any

import pytest

from tests.pipeline_templates.gitlab_ci_cases import GITLAB_RULES, GITLAB_VALID
from timbel_dagster.pipeline_templates import gitlab_yaml
from timbel_dagster.pipeline_templates.gitlab_ci_check import check_gitlab_ci_text
from timbel_dagster.pipeline_templates.gitlab_ci_jobs import Report
from timbel_dagster.pipeline_templates.gitlab_ci_semantics import expand_extends


def check(text: str) -> dict[str, Any]:
    return dict(check_gitlab_ci_text(textwrap.dedent(text).lstrip("\n")))


def positions(checked: dict[str, Any]) -> list[tuple[int | None, int | None, str]]:
    return [(e["line"], e["column"], e["message"]) for e in checked["errors"]]


def test_a_realistic_file_is_valid() -> None:
    checked = check(
        """
        workflow:
          rules:
            - if: $CI_PIPELINE_SOURCE == "merge_request_event"
            - if: $CI_COMMIT_BRANCH == $CI_DEFAULT_BRANCH
        stages: [lint, build, test, deploy]
        default:
          image: python:3.12
          interruptible: true
        variables:
          PIP_CACHE_DIR: "$CI_PROJECT_DIR/.cache/pip"
        .python: &python
          cache:
            key: pip
            paths: [.cache/pip]
          before_script:
            - pip install -r requirements.txt
        lint:
          <<: *python
          stage: lint
          script: [ruff check .]
        build:
          <<: *python
          stage: build
          script: [python -m build]
          artifacts:
            paths: [dist/]
        test:
          extends: .python
          stage: test
          parallel:
            matrix:
              - PYTHON: ["3.11", "3.12"]
          needs: [build]
          script:
            - !reference [.python, before_script]
            - pytest -q
        pages:
          stage: deploy
          needs: [{job: test, artifacts: false}, {job: docs, optional: true}]
          script: [mkdocs build -d public]
          artifacts:
            paths: [public]
          rules:
            - if: $CI_COMMIT_BRANCH == $CI_DEFAULT_BRANCH
        """
    )
    assert checked["errors"] == [] and checked["valid"]
    assert (checked["kind"], checked["checker"]) == ("gitlab-ci", "yaml+schema")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (  # an unknown keyword is reported at the key
            "build:\n  script: make\n  artefacts:\n    paths: [out]\n",
            [(3, 3, "build: Additional properties are not allowed ('artefacts' was unexpected)")],
        ),
        (  # a wrong type at the value
            "build:\n  script: make\n  retry: lots\n",
            [(3, 10, "build.retry: 'lots' is not valid under any of the given schemas ('lots' "
                     "is not of type 'integer'; 'lots' is not of type 'object')")],
        ),
        (  # inside a list
            "build:\n  script:\n    - make\n    - 42\n",
            [(4, 7, "build.script.1: 42 is not valid under any of the given schemas (42 is not "
                    "of type 'string'; 42 is not of type 'array')")],
        ),
        (
            "build:\n  script: make\n  when: sometimes\n",
            [(3, 9, "build.when: 'sometimes' is not one of ['on_success', 'on_failure', "
                    "'always', 'never', 'manual', 'delayed']")],
        ),
        (
            "stages: build\nbuild:\n  script: make\n",
            [(1, 9, "stages: 'build' is not of type 'array'")],
        ),
    ],
)  # fmt: skip
def test_schema_errors_carry_positions(text: str, expected: list[tuple[int, int, str]]) -> None:
    assert positions(check(text)) == expected


def test_yaml_syntax_error_position() -> None:
    checked = check("build:\n  script: [make\n  stage: build\n")
    ((line, column, message),) = positions(checked)
    assert (line, column) == (3, 8) and message.startswith("YAML syntax:")


def test_references_are_resolved_nested_and_after_extends() -> None:
    text = textwrap.dedent(
        """
        .base:
          script: [echo base]
        .setup:
          extends: .base
          before_script:
            - echo setup
            - !reference [.base, script]
        .deep:
          script:
            - !reference [.setup, before_script]
            - !reference [.setup, script]
        build:
          script: !reference [.deep, script]
        """
    )
    loaded = gitlab_yaml.load(text)
    assert isinstance(loaded.data["build"]["script"], gitlab_yaml.Reference)
    checked = check(text)
    assert checked["valid"], checked["errors"]
    expanded = expand_extends(loaded.data, Report(loaded, lenient=False))
    resolved, problems = gitlab_yaml.resolve_references(loaded.data, expanded)
    assert problems == []
    # .setup's script exists only through `extends: .base`, as GitLab resolves it
    assert resolved["build"]["script"] == [["echo setup", ["echo base"]], ["echo base"]]


def test_unknown_reference_is_an_error_at_the_tag() -> None:
    checked = check(
        """
        .setup:
          script: [echo]
        build:
          script:
            - !reference [.setup, before_script]
            - !reference [.missing, script]
        """
    )
    assert positions(checked) == [
        (5, 7, "!reference [.setup, before_script]: 'before_script' is not defined in .setup"),
        (6, 7, "!reference [.missing, script]: '.missing' is not defined in the top level"),
    ]


def test_reference_cycle_stops_at_gitlabs_depth() -> None:
    checked = check("a:\n  script: !reference [b, script]\nb:\n  script: !reference [a, script]\n")
    assert not checked["valid"]
    assert all("nested more than 10 levels" in e["message"] for e in checked["errors"])


def test_anchors_aliases_and_merge_keys() -> None:
    text = textwrap.dedent(
        """
        .a: &a
          image: alpine
          tags: [a]
        .b: &b
          image: busybox
          retry: 2
        job:
          <<: [*a, *b]
          tags: [mine]
          script: &commands [make, make test]
        other:
          script: *commands
        """
    )
    loaded = gitlab_yaml.load(text)
    # explicit keys win; among merged mappings the earlier one wins
    assert loaded.data["job"] == {
        "image": "alpine",
        "tags": ["mine"],
        "retry": 2,
        "script": ["make", "make test"],
    }
    assert loaded.data["other"]["script"] == ["make", "make test"]
    assert check(text)["valid"]


def test_error_in_merged_content_points_at_the_anchor() -> None:
    checked = check(".defaults: &defaults\n  retry: often\njob:\n  <<: *defaults\n  script: make\n")
    # hidden keys may hold anything (an "arbitrary YAML anchor"); the job may not
    ((line, column, message),) = positions(checked)
    assert (line, column) == (2, 10) and message.startswith("job.retry: 'often' is not valid")


@pytest.mark.parametrize("name", GITLAB_RULES)
def test_gitlab_rules(name: str) -> None:
    """Each case breaks the GitLab rule it cites (see gitlab_ci_cases.py), reported where."""
    _rule, text, expected = GITLAB_RULES[name]
    assert positions(check(text)) == expected


@pytest.mark.parametrize("name", GITLAB_VALID)
def test_files_gitlab_accepts_pass(name: str) -> None:
    """No false positive: same-stage needs, needs: [], optional needs, .pre/.post, parallel
    instance names, 11 levels of extends, on_stop pairs, global keywords."""
    _rule, text = GITLAB_VALID[name]
    checked = check(text)
    assert (checked["errors"], checked["warnings"]) == ([], [])


def test_included_jobs_turn_unknown_references_into_warnings() -> None:
    checked = check(
        "include:\n  - project: group/ci-templates\n    file: /jobs.yml\n"
        "test:\n  extends: .from-include\n  needs: [build]\n"
    )
    assert checked["valid"], checked["errors"]
    assert any("not fetched" in w for w in checked["warnings"])
    assert any("needs 'build'" in w and "include" in w for w in checked["warnings"])


def test_spec_header_document_is_skipped() -> None:
    text = (
        "spec:\n  inputs:\n    stage:\n      default: test\n---\n"
        "scan:\n  stage: $[[ inputs.stage ]]\n  script: trivy fs .\n"
    )
    checked = check(text)
    # GitLab checks the stage after interpolating the inputs, so it is not judged here
    assert checked["valid"], checked["errors"]
    assert "inputs are not interpolated" in checked["warnings"][0]
    wrong = check(text.replace("$[[ inputs.stage ]]", "scanning"))
    assert [e["line"] for e in wrong["errors"]] == [7]


def test_unknown_tag_is_reported() -> None:
    checked = check("build:\n  script: !include other.yml\n")
    assert positions(checked)[0][:2] == (2, 11)
    assert "unknown YAML tag !include" in positions(checked)[0][2]
