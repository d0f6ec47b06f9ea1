""".gitlab-ci.yml resource limits (issue 13, finding 5): alias, merge-key, `!reference`
and `extends` bombs, deep nesting and oversized files are refused with one error naming
the limit, through the real validator; ordinary anchors keep working.

Before the fix a 425-byte alias bomb took 131 s and 3.3 GB; the `!reference` bomb below ran
for minutes. Each case here runs under a timeout.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from timbel_dagster.cli.app import main
from timbel_dagster.pipeline_templates import (
    gitlab_ci_check,
    gitlab_yaml,
    jenkinsfile_check,
    validate,
)
from timbel_dagster.pipeline_templates.gitlab_ci_check import check_gitlab_ci, check_gitlab_ci_text
from timbel_dagster.pipeline_templates.validate import detect_kind, validate_file

# 457 bytes: nine levels of nine aliases, 1.7 billion values once expanded.
ALIAS_BOMB = (
    '.a0: &a0 ["lol"]\n'
    + "".join(f".a{i}: &a{i} [{','.join([f'*a{i - 1}'] * 9)}]\n" for i in range(1, 10))
    + "job:\n  script: *a9\n"
)
ALIAS_BOMB_ERROR = (
    "YAML aliases expand 25 written nodes to 1,749,445,658, over the limit of 2,500 for a "
    "document this size (excessive aliasing)"
)


def errors(checked: dict) -> list[tuple[int | None, int | None, str]]:
    return [(e["line"], e["column"], e["message"]) for e in checked["errors"]]


@pytest.mark.timeout(10)
def test_alias_bomb_is_refused_by_template_validate(tmp_path: Path) -> None:
    assert len(ALIAS_BOMB.encode()) <= 500
    path = tmp_path / ".gitlab-ci.yml"
    path.write_text(ALIAS_BOMB)

    checked = validate_file(path)
    result = CliRunner().invoke(main, ["template", "validate", str(path)])

    assert errors(dict(checked)) == [(None, None, ALIAS_BOMB_ERROR)]
    assert result.exit_code == 1
    assert f"{path}: error: {ALIAS_BOMB_ERROR}" in result.stderr.splitlines()


@pytest.mark.timeout(10)
def test_merge_key_bomb_is_refused() -> None:
    text = ".t0: &t0 {image: alpine}\n" + "".join(
        f".t{i}: &t{i} {{<<: [{', '.join([f'*t{i - 1}'] * 9)}]}}\n" for i in range(1, 10)
    )
    text += "job:\n  <<: *t9\n  script: [make]\n"
    ((line, column, message),) = errors(check_gitlab_ci_text(text))
    assert (line, column) == (None, None) and message.endswith("(excessive aliasing)")


@pytest.mark.timeout(10)
def test_reference_bomb_is_refused() -> None:
    """`!reference` to values full of references multiplies like aliases, up to GitLab's
    ten levels: 1.8 kB stood for 9^7 copies."""
    text = ".r0:\n  script: [echo lol]\n" + "".join(
        f".r{i}:\n  script: [{', '.join([f'!reference [.r{i - 1}, script]'] * 9)}]\n"
        for i in range(1, 8)
    )
    text += "job:\n  script: !reference [.r7, script]\n"
    message = "!reference tags expand the configuration past the limit of 100,000 values"
    assert errors(check_gitlab_ci_text(text)) == [(None, None, message)]


@pytest.mark.timeout(10)
def test_extends_amplification_is_refused() -> None:
    """A big hidden job extended by many jobs is copied into each of them."""
    text = ".big:\n" + "".join(f"  k{i}: v\n" for i in range(2_000))
    text += "".join(f"j{i}:\n  extends: .big\n  script: [x]\n" for i in range(100))
    message = "extends expands the configuration past the limit of 100,000 values"
    assert errors(check_gitlab_ci_text(text)) == [(None, None, message)]


@pytest.mark.timeout(10)
def test_expansion_cap_nesting_and_cycles() -> None:
    # within go-yaml's ratio (100x) but over the GitLab checker's absolute cap
    text = ".big: &big\n" + "".join(f"  - echo {i}\n" for i in range(1_500))
    text += "".join(f"job{j}:\n  script: *big\n" for j in range(80))
    assert errors(check_gitlab_ci_text(text)) == [
        (None, None, "YAML expands to 121,823 nodes (1,743 written), over the limit of 100,000")
    ]

    def nested(levels: int) -> str:
        return "job:\n  script: " + "[" * levels + "]" * levels + "\n"

    assert errors(check_gitlab_ci_text(nested(200))) == [
        (None, None, "YAML nested 202 levels deep, over the limit of 150")
    ]
    assert errors(check_gitlab_ci_text(nested(5_000))) == [  # past the composer's recursion
        (None, None, "YAML nested too deeply to read (the limit is 150 levels)")
    ]
    cycle = check_gitlab_ci_text("job: &job\n  script: [make]\n  needs: [*job]\n")
    assert errors(cycle) == [(1, 6, "an alias refers to the node that contains it")]


def test_a_deep_document_is_refused_before_the_composer_recurses(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The pure-Python composer recurses once per level, and where its RecursionError
    strikes depends on the caller's stack (a CI worker crashed rendering one): so depth is
    measured on the parser's events first, and a deep file never reaches the composer."""

    def composer_called(*args: object, **kwargs: object) -> None:
        raise AssertionError("the composer was given a document past the depth limit")

    monkeypatch.setattr(gitlab_yaml.yaml, "compose_all", composer_called)
    for levels, message in (
        (200, "YAML nested 202 levels deep, over the limit of 150"),
        (900, "YAML nested 902 levels deep, over the limit of 150"),
        (100_000, "YAML nested too deeply to read (the limit is 150 levels)"),
    ):
        text = "job:\n  script: " + "[" * levels + "]" * levels + "\n"
        assert errors(check_gitlab_ci_text(text)) == [(None, None, message)]


@pytest.mark.timeout(20)
def test_a_file_over_the_size_limit_is_not_read(tmp_path: Path) -> None:
    path = tmp_path / ".gitlab-ci.yml"
    filler = "# " + "x" * 98 + "\n"
    path.write_text("job:\n  script: [make]\n" + filler * (gitlab_yaml.MAX_FILE_BYTES // 100))
    message = "the file is over the limit of 1,048,576 bytes"
    assert errors(dict(check_gitlab_ci(path))) == [(None, None, message)]
    assert errors(check_gitlab_ci_text(path.read_text())) == [(None, None, message)]
    unnamed = tmp_path / "pipeline"
    unnamed.write_bytes(b"stages: [test]\n" + b"\n" * (2 * gitlab_yaml.MAX_FILE_BYTES))
    assert detect_kind(unnamed) == "gitlab-ci"  # blank lines no longer rescanned per line


def test_ordinary_templates_with_anchors_still_validate() -> None:
    """`.job_template: &tpl` merged with `<<: *tpl` into many jobs: common, and fine."""
    text = (
        "stages: [build, test]\n"
        ".job_template: &tpl\n"
        "  image: python:3.12\n"
        "  before_script: [pip install -r requirements.txt]\n"
        "  tags: [docker]\n"
        "  retry: 2\n"
        "  variables: {PIP_CACHE_DIR: .cache}\n"
    )
    text += "".join(
        f"test{i}:\n  <<: *tpl\n  stage: test\n  script: [pytest -k shard{i}]\n" for i in range(300)
    )
    checked = check_gitlab_ci_text(text)
    assert checked["valid"], checked["errors"][:3]
    loaded = gitlab_yaml.load(text)
    assert loaded.data["test7"]["image"] == "python:3.12"
    assert loaded.data["test7"]["script"] == ["pytest -k shard7"]


@pytest.mark.timeout(10)
def test_pipeline_file_regexes_are_linear() -> None:
    """Patterns that rescanned their input: `^\\s*` under re.M over blank lines (1 MB of them
    took minutes), and `\\(('[^)]+)` over key names such as `('('(...`."""
    blank = "\n" * 1_000_000
    assert jenkinsfile_check._DECLARATIVE_HINT.search(blank + "  pipeline {") is not None
    assert validate._GROOVY_START.search(blank) is None
    assert gitlab_ci_check._unexpected_keys("(" + "('" * 500_000) == []
    assert gitlab_ci_check._unexpected_keys("('a', 'b' were unexpected)") == ["a", "b"]
