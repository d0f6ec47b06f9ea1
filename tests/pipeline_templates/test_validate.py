"""Telling Jenkinsfiles from .gitlab-ci.yml files, and validating a mixed batch in order."""

from __future__ import annotations

from pathlib import Path

import pytest

from timbel_dagster.pipeline_templates import jenkinsfile_check
from timbel_dagster.pipeline_templates.validate import detect_kind, validate_file, validate_many


@pytest.mark.parametrize(
    ("name", "text", "kind"),
    [
        ("Jenkinsfile", "", "jenkinsfile"),
        ("Jenkinsfile.release", "", "jenkinsfile"),
        ("deploy.groovy", "", "jenkinsfile"),
        ("api.jenkinsfile", "", "jenkinsfile"),
        (".gitlab-ci.yml", "", "gitlab-ci"),
        ("templates.gitlab-ci.yaml", "", "gitlab-ci"),
        ("ci.yml", "", "gitlab-ci"),
        ("pipeline.txt", "@Library('lib') _\nbuildPlugin()\n", "jenkinsfile"),
        ("pipeline.txt", "node {\n  sh 'make'\n}\n", "jenkinsfile"),
        ("pipeline.txt", "build:\n  script: [make]\n", "gitlab-ci"),
        ("pipeline.txt", "test:\n  script: !reference [.x, script]\n", "gitlab-ci"),
    ],
)
def test_detect_kind(name: str, text: str, kind: str) -> None:
    assert detect_kind(Path(name), text) == kind


def test_unknown_kind_names_the_file() -> None:
    with pytest.raises(ValueError, match=r"notes\.txt: cannot tell"):
        detect_kind(Path("notes.txt"), "just some words")


def test_mixed_batch_keeps_the_order(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(jenkinsfile_check, "find_groovy", lambda: None)
    jenkinsfile = tmp_path / "Jenkinsfile"
    jenkinsfile.write_text("pipeline {\n  agent any\n}\n")
    ci = tmp_path / ".gitlab-ci.yml"
    ci.write_text("lint:\n  stage: lint\n  script: x\nbuild:\n  script: 1\n")
    results = validate_many([ci, jenkinsfile, ci])
    assert [r["kind"] for r in results] == ["gitlab-ci", "jenkinsfile", "gitlab-ci"]
    errors = results[0]["errors"]
    assert [(e["line"], e["column"]) for e in errors] == sorted(
        (e["line"], e["column"]) for e in errors
    )
    assert [(e["line"], e["column"]) for e in errors] == [(2, 10), (5, 11)]
    assert validate_file(jenkinsfile) == results[1]
