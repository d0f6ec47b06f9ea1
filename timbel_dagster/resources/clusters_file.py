"""The clusters Timbel knows, from TIMBEL_CLUSTERS_FILE (YAML).

```yaml
clusters:
  - name: seoul-prod-01
    group: prod              # dev | staging | prod
    context: prod-admin      # a kubeconfig context, or:
    # api_url: https://prod-01.k8s.example.com:6443
    # token_env: PROD_01_TOKEN   (the token is read from this variable, never the file)
    kubernetes_version: "1.29"
```
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from timbel_dagster.records.delivery import (
    ENVIRONMENT_GROUPS,
    ClusterRecord,
    CommitRecord,
    DeploymentRecord,
    IncidentRecord,
    UserRecord,
)
from timbel_dagster.safe_yaml import load_yaml


class ClustersFileError(ValueError):
    """The clusters file is missing or wrong; the message names the file and the entry."""


@dataclass(frozen=True)
class ClusterConfig:
    name: str
    group: str
    context: str | None
    api_url: str | None
    token_env: str | None
    kubernetes_version: str | None

    def record(self) -> ClusterRecord:
        return ClusterRecord(self.name, self.group, self.api_url, self.kubernetes_version)


def _entry(path: Path, index: int, raw: Any) -> ClusterConfig:
    where = f"{path}: clusters[{index}]"
    if not isinstance(raw, dict):
        raise ClustersFileError(f"{where}: expected a mapping, got {type(raw).__name__}")
    unknown = set(raw) - {"name", "group", "context", "api_url", "token_env", "kubernetes_version"}
    if unknown:
        raise ClustersFileError(f"{where}: unknown key(s) {', '.join(sorted(unknown))}")
    name, group = raw.get("name"), raw.get("group")
    if not isinstance(name, str) or not name:
        raise ClustersFileError(f"{where}: 'name' is required")
    if group not in ENVIRONMENT_GROUPS:
        raise ClustersFileError(
            f"{where} ({name}): 'group' must be one of "
            f"{', '.join(ENVIRONMENT_GROUPS)}, not {group!r}"
        )
    if not raw.get("context") and not raw.get("api_url"):
        raise ClustersFileError(f"{where} ({name}): give 'context' or 'api_url'")
    if raw.get("api_url") and not str(raw["api_url"]).startswith(("https://", "http://")):
        raise ClustersFileError(f"{where} ({name}): 'api_url' must be an http(s) URL")
    version = raw.get("kubernetes_version")
    return ClusterConfig(
        name,
        group,
        raw.get("context"),
        raw.get("api_url"),
        raw.get("token_env"),
        str(version) if version is not None else None,
    )


def load_clusters(path: Path) -> list[ClusterConfig]:
    """Parse and check the clusters file; names must be unique."""
    import yaml

    try:
        data = load_yaml(path.read_text())
    except OSError as error:
        raise ClustersFileError(
            f"TIMBEL_CLUSTERS_FILE: cannot read {path}: {error.strerror}"
        ) from None
    except yaml.YAMLError as error:
        raise ClustersFileError(f"{path}: not valid YAML: {error}") from None
    if not isinstance(data, dict) or not isinstance(data.get("clusters"), list):
        raise ClustersFileError(f"{path}: expected a top-level 'clusters:' list")
    clusters = [_entry(path, i, raw) for i, raw in enumerate(data["clusters"])]
    names = [c.name for c in clusters]
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise ClustersFileError(f"{path}: cluster name(s) used twice: {', '.join(duplicates)}")
    return clusters


class ClustersFileSource:
    """A directory source whose clusters come from the clusters file (and nothing else)."""

    name = "clusters-file"

    def __init__(self, path: Path) -> None:
        self.path = path

    def users(self) -> list[UserRecord]:
        return []

    def clusters(self) -> list[ClusterRecord]:
        return [c.record() for c in load_clusters(self.path)]

    def commits(self, since: dt.datetime, until: dt.datetime) -> list[CommitRecord]:
        return []

    def deployments(self, since: dt.datetime, until: dt.datetime) -> list[DeploymentRecord]:
        return []

    def incidents(self, since: dt.datetime, until: dt.datetime) -> list[IncidentRecord]:
        return []
