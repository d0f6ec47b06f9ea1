"""CI definitions, recognised by path.

| system | files |
|---|---|
| jenkins | `Jenkinsfile`, `Jenkinsfile.*` (not docs: .md .txt ...), `*.jenkinsfile` anywhere |
| gitlab-ci | `.gitlab-ci.yml` (and `.gitlab-ci.yaml`) anywhere, `.gitlab/ci/*.yml` |
| github-actions | `.github/workflows/*.yml` / `*.yaml` at the root |
| azure-pipelines | `azure-pipelines.yml` / `.yaml` anywhere, `.azure-pipelines/*.yml` |
| circleci | `.circleci/config.yml` / `.yaml` |
| bitbucket-pipelines | `bitbucket-pipelines.yml` |
| travis-ci | `.travis.yml` |
| drone | `.drone.yml` |
| woodpecker | `.woodpecker.yml`, `.woodpecker/*.yml` |
| buildkite | `.buildkite/pipeline*.yml` |
| google-cloud-build | `cloudbuild.yaml` / `.yml` |
| aws-codebuild | `buildspec.yml` / `.yaml` |
| appveyor | `appveyor.yml`, `.appveyor.yml` |
| tekton, argo-workflows | Kubernetes manifests of those APIs (found by `containers`) |
"""

from __future__ import annotations

import re

from timbel_dagster.repo_analysis.model import Findings
from timbel_dagster.repo_analysis.tool_usage import scan_ci_file
from timbel_dagster.repo_analysis.walk import Tree

_YAML = r"\.ya?ml"
PATTERNS: tuple[tuple[str, re.Pattern[str]], ...] = tuple(
    (system, re.compile(pattern))
    for system, pattern in (
        (
            "jenkins",
            r"(?:^|/)(?:Jenkinsfile(?:\.(?!(?:md|txt|rst|adoc|html)$)[^/]+)?|[^/]+\.[Jj]enkinsfile)$",
        ),
        ("gitlab-ci", rf"(?:(?:^|/)\.gitlab-ci{_YAML}|^\.gitlab/ci/[^/]+{_YAML})$"),
        ("github-actions", rf"^\.github/workflows/[^/]+{_YAML}$"),
        ("azure-pipelines", rf"(?:(?:^|/)azure-pipelines{_YAML}|^\.azure-pipelines/[^/]+{_YAML})$"),
        ("circleci", rf"^\.circleci/config{_YAML}$"),
        ("bitbucket-pipelines", rf"^bitbucket-pipelines{_YAML}$"),
        ("travis-ci", rf"^\.travis{_YAML}$"),
        ("drone", rf"^\.drone{_YAML}$"),
        ("woodpecker", rf"^(?:\.woodpecker{_YAML}|\.woodpecker/[^/]+{_YAML})$"),
        ("buildkite", rf"^\.buildkite/pipeline[^/]*{_YAML}$"),
        ("google-cloud-build", rf"(?:^|/)cloudbuild{_YAML}$"),
        ("aws-codebuild", rf"(?:^|/)buildspec{_YAML}$"),
        ("appveyor", rf"^\.?appveyor{_YAML}$"),
    )
)


def ci_system(path: str) -> str | None:
    """The CI system whose definition `path` is, or None."""
    for system, pattern in PATTERNS:
        if pattern.search(path):
            return system
    return None


def collect(tree: Tree, findings: Findings) -> None:
    """List every CI definition in `tree` by path."""
    for path in tree.files:
        system = ci_system(path)
        if system is not None:
            findings.ci_files.append({"path": path, "system": system})
            try:
                text = tree.read_text(path)
            except (OSError, ValueError):  # too large or not text: listed, not scanned
                continue
            scan_ci_file(findings, path, text)
