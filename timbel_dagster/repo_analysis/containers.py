"""Helm charts, Kubernetes manifests and Compose files: what they deploy and which images.

- Helm: each Chart.yaml (name, version, appVersion, dependencies; requirements.yaml for
  apiVersion v1 charts) and the images its values*.yaml name, as a string `image:` or as
  an `image:` mapping of registry/repository/tag/digest (an empty tag means appVersion).
  Nothing under a chart's directory is read as a plain Kubernetes manifest: templates are
  Go templates, not YAML.
- Kubernetes: any other *.yaml/*.yml whose top level says `apiVersion:` and `kind:`; every
  document of it (and every item of a `List`), with the images its containers use. Tekton
  and Argo Workflows resources are also CI definitions.
- Compose: docker-compose*.yml / compose*.yml services and their images.
"""

from __future__ import annotations

import re
from typing import Any

from timbel_dagster.repo_analysis.model import Findings
from timbel_dagster.repo_analysis.walk import Tree, parent_of
from timbel_dagster.safe_yaml import load_yaml, load_yaml_documents

_KUBERNETES = re.compile(r"^apiVersion:\s*\S", re.MULTILINE)
_KIND = re.compile(r"^kind:\s*\S", re.MULTILINE)
CI_RESOURCES = {
    "tekton.dev/": ("tekton", None),
    "argoproj.io/": (
        "argo-workflows",
        {"Workflow", "WorkflowTemplate", "ClusterWorkflowTemplate", "CronWorkflow"},
    ),
}


def _is_compose(name: str) -> bool:
    return name.startswith(("docker-compose", "compose")) and name.endswith((".yml", ".yaml"))


def _images(node: Any, found: list[str]) -> None:
    """Every string under an `image` key, depth first."""
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "image" and isinstance(value, str):
                found.append(value)
            else:
                _images(value, found)
    elif isinstance(node, list):
        for item in node:
            _images(item, found)


def _value_images(node: Any, app_version: str | None, found: list[str]) -> None:
    """Images in Helm values: `image: repo:tag` or `image: {registry, repository, tag}`."""
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "image" and isinstance(value, str) and value:
                found.append(value)
            elif key == "image" and isinstance(value, dict) and value.get("repository"):
                reference = str(value["repository"])
                if value.get("registry"):
                    reference = f"{value['registry']}/{reference}"
                tag = value.get("tag") or app_version
                if value.get("digest"):
                    reference += f"@{value['digest']}"
                elif tag:
                    reference += f":{tag}"
                found.append(reference)
            else:
                _value_images(value, app_version, found)
    elif isinstance(node, list):
        for item in node:
            _value_images(item, app_version, found)


def _chart(tree: Tree, path: str, findings: Findings) -> None:
    chart = load_yaml(tree.read_text(path))
    if not isinstance(chart, dict) or not chart.get("name"):
        raise ValueError("Chart.yaml has no name")
    directory = parent_of(path)
    dependencies = chart.get("dependencies") or []
    requirements = f"{directory}/requirements.yaml".lstrip("/")
    if not dependencies and requirements in tree.files:
        dependencies = (load_yaml(tree.read_text(requirements)) or {}).get("dependencies") or []
    app_version = str(chart["appVersion"]) if chart.get("appVersion") is not None else None
    images: list[str] = []
    for name in tree.in_directory(directory):
        if name.startswith("values") and name.endswith((".yaml", ".yml")):
            values_path = f"{directory}/{name}".lstrip("/")
            _value_images(load_yaml(tree.read_text(values_path)), app_version, images)
    findings.tool("helm", path)
    findings.manifests.append(
        {
            "path": path,
            "kind": "helm-chart",
            "api_version": chart.get("apiVersion"),
            "name": chart["name"],
            "version": str(chart.get("version")) if chart.get("version") is not None else None,
            "app_version": app_version,
            "dependencies": [
                {k: str(d[k]) for k in ("name", "version", "repository") if d.get(k) is not None}
                for d in dependencies
                if isinstance(d, dict)
            ],
            "images": list(dict.fromkeys(images)),
        }
    )


def _kubernetes(tree: Tree, path: str, text: str, findings: Findings) -> None:
    resources: list[dict[str, Any]] = []
    images: list[str] = []
    ci_system = None
    for document in load_yaml_documents(text):
        if not isinstance(document, dict):
            continue
        items = document.get("items") if document.get("kind") == "List" else [document]
        for item in items or []:
            if not isinstance(item, dict) or not item.get("apiVersion") or not item.get("kind"):
                continue
            metadata = item.get("metadata") if isinstance(item.get("metadata"), dict) else {}
            resources.append(
                {
                    "api_version": str(item["apiVersion"]),
                    "kind": str(item["kind"]),
                    "name": metadata.get("name"),
                    "namespace": metadata.get("namespace"),
                }
            )
            _images(item, images)
            for prefix, (system, kinds) in CI_RESOURCES.items():
                if str(item["apiVersion"]).startswith(prefix) and (
                    kinds is None or item["kind"] in kinds
                ):
                    ci_system = system
    if not resources:
        return
    if ci_system:
        findings.ci_files.append({"path": path, "system": ci_system})
    findings.manifests.append(
        {
            "path": path,
            "kind": "kubernetes",
            "resources": resources,
            "images": list(dict.fromkeys(images)),
        }
    )


def _compose(tree: Tree, path: str, findings: Findings) -> None:
    data = load_yaml(tree.read_text(path))
    services = data.get("services") if isinstance(data, dict) else None
    if not isinstance(services, dict):
        raise ValueError("no services mapping")
    images = [s["image"] for s in services.values() if isinstance(s, dict) and s.get("image")]
    findings.manifests.append(
        {
            "path": path,
            "kind": "docker-compose",
            "services": sorted(services),
            "images": list(dict.fromkeys(images)),
        }
    )


def collect(tree: Tree, findings: Findings, skip: set[str]) -> None:
    """Parse Helm charts, Compose files and Kubernetes manifests in `tree`; paths in `skip`
    (CI files, lockfiles) are not Kubernetes candidates."""
    charts = [p for p in tree.files if p.rpartition("/")[2] == "Chart.yaml"]
    chart_directories = tuple(f"{parent_of(p)}/".lstrip("/") for p in charts)
    for path in charts:
        with findings.guarded(path, "helm-chart"):
            _chart(tree, path, findings)
    for path, size in tree.files.items():
        name = path.rpartition("/")[2]
        if not name.endswith((".yaml", ".yml")) or path in skip:
            continue
        if _is_compose(name):
            with findings.guarded(path, "docker-compose"):
                _compose(tree, path, findings)
            continue
        if size > tree.max_file_bytes or path.startswith(chart_directories):
            continue
        try:
            text = tree.read_text(path)
        except ValueError:  # not text: not a manifest either
            continue
        if _KUBERNETES.search(text) and _KIND.search(text):
            with findings.guarded(path, "kubernetes"):
                _kubernetes(tree, path, text, findings)
