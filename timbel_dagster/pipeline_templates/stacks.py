"""From a repository analysis to the facts a pipeline template needs: toolchains (image,
setup/build/test commands, cache directories), the container image, the deployment.

The analysis is `timbel analyze-repo`'s JSON: `languages` (name -> bytes), `frameworks`,
`build_tools` (entries {name, paths, used, evidence}, or bare names, such as maven, gradle,
npm, yarn, pnpm, pip, poetry, uv, go, cargo, dotnet), `manifests`, `dependencies`,
`dockerfiles` ([{path, stages, base_images}]), `ci_files`. Missing keys mean "none found".
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import PurePosixPath
from typing import Any

# One toolchain per ecosystem; within one, the more specific tool wins (poetry over pip).
ECOSYSTEMS: dict[str, tuple[str, ...]] = {
    "java": ("maven", "gradle"),
    "node": ("pnpm", "yarn", "npm"),
    "python": ("uv", "poetry", "pip"),
    "go": ("go",),
    "rust": ("cargo",),
    "dotnet": ("dotnet",),
}
# Languages that name their build tool unambiguously, for analyses that found no tool.
LANGUAGE_TOOLS = {
    "go": "go", "rust": "cargo", "c#": "dotnet", "f#": "dotnet", "python": "pip",
    "javascript": "npm", "typescript": "npm",
}  # fmt: skip
DEFAULTS = {
    "default_branch": "main",
    "registry": "registry.example.com",
    "registry_credentials": "registry-credentials",
    "kubeconfig_credentials": "kubeconfig",
    "trivy_severity": "HIGH,CRITICAL",
    "trivy_image": "aquasec/trivy:0.58.1",
    "java_version": "17",
    "node_version": "20",
    "python_version": "3.12",
    "go_version": "1.22",
    "rust_version": "1",
    "dotnet_version": "8.0",
}
_KUBE_DIRS = ("k8s", "kubernetes", "deploy", "manifests", "kustomize")


def _toolchain(tool: str, p: Mapping[str, str], manifests: set[str]) -> dict[str, Any]:
    """Image, environment (`{cache}` = the tool's cache directory), commands and reports."""
    python = f"python:{p['python_version']}"
    node = f"node:{p['node_version']}"
    packaged = bool(manifests & {"pyproject.toml", "setup.py", "setup.cfg"})
    pip_install = (
        ".venv/bin/pip install -r requirements.txt"
        if "requirements.txt" in manifests
        else ".venv/bin/pip install ."
    )
    table: dict[str, dict[str, Any]] = {
        "maven": {
            "image": f"maven:3.9-eclipse-temurin-{p['java_version']}",
            "env": {"MAVEN_OPTS": "-Dmaven.repo.local={cache}/repository"},
            "setup": [], "build": ["mvn -B -DskipTests package"], "test": ["mvn -B verify"],
            "junit": "**/target/surefire-reports/TEST-*.xml",
        },
        "gradle": {
            "image": f"gradle:8-jdk{p['java_version']}",
            "env": {"GRADLE_USER_HOME": "{cache}"},
            "setup": [], "build": ["./gradlew --no-daemon assemble"],
            "test": ["./gradlew --no-daemon build"],
            "junit": "**/build/test-results/test/TEST-*.xml",
        },
        "npm": {
            "image": node, "env": {"npm_config_cache": "{cache}"}, "setup": ["npm ci"],
            "build": ["npm run build --if-present"], "test": ["npm test"],
        },
        "yarn": {
            "image": node, "env": {"YARN_CACHE_FOLDER": "{cache}"},
            "setup": ["yarn install --frozen-lockfile"], "build": [], "test": ["yarn test"],
        },
        "pnpm": {
            "image": node, "env": {"npm_config_store_dir": "{cache}"},
            "setup": ["corepack enable", "pnpm install --frozen-lockfile"],
            "build": ["pnpm run --if-present build"], "test": ["pnpm test"],
        },
        "pip": {
            "image": python, "env": {"PIP_CACHE_DIR": "{cache}"},
            "setup": ["python -m venv .venv", pip_install, ".venv/bin/pip install pytest"],
            "build": [".venv/bin/pip install build", ".venv/bin/python -m build"]
            if packaged else [".venv/bin/python -m compileall -q ."],
            "test": [".venv/bin/python -m pytest"],
        },
        "poetry": {
            "image": python,
            "env": {"POETRY_CACHE_DIR": "{cache}", "POETRY_VIRTUALENVS_IN_PROJECT": "true"},
            "setup": ["pip install poetry", "poetry install --no-interaction"],
            "build": ["poetry build"], "test": ["poetry run pytest"],
        },
        "uv": {
            "image": f"ghcr.io/astral-sh/uv:python{p['python_version']}-bookworm-slim",
            "env": {"UV_CACHE_DIR": "{cache}"}, "setup": ["uv sync --frozen"],
            "build": ["uv build"], "test": ["uv run pytest"],
        },
        "go": {
            "image": f"golang:{p['go_version']}",
            "env": {"GOMODCACHE": "{cache}/mod", "GOCACHE": "{cache}/build"},
            "setup": ["go mod download"], "build": ["go build ./..."],
            "test": ["go test ./..."],
        },
        "cargo": {
            "image": f"rust:{p['rust_version']}", "env": {"CARGO_HOME": "{cache}"},
            "setup": ["cargo fetch"], "build": ["cargo build --release"],
            "test": ["cargo test"],
        },
        "dotnet": {
            "image": f"mcr.microsoft.com/dotnet/sdk:{p['dotnet_version']}",
            "env": {"NUGET_PACKAGES": "{cache}"}, "setup": ["dotnet restore"],
            "build": ["dotnet build --no-restore -c Release"],
            "test": ["dotnet test --no-restore"],
        },
    }  # fmt: skip
    return {"name": tool, "junit": None, **table[tool]}


def _paths(entries: Any) -> list[str]:
    """Paths from a list of strings or of mappings with a `path`."""
    found = []
    for entry in entries or []:
        path = entry.get("path") if isinstance(entry, Mapping) else entry
        if isinstance(path, str):
            found.append(path.replace("\\", "/"))
    return found


def choose_tools(analysis: Mapping[str, Any], only: str | None = None) -> list[str]:
    """The build tools to generate for: one per ecosystem, in a stable order."""
    known = {tool for tools in ECOSYSTEMS.values() for tool in tools}
    if only:
        if only not in known:
            raise ValueError(f"build_tool {only!r} is not one of {', '.join(sorted(known))}")
        return [only]
    # `timbel analyze-repo` lists {name, paths, used, evidence} entries; bare names are
    # accepted too. Within an ecosystem, a tool the scripts use wins over one only present
    # (the yarn.lock the Dockerfile installs from, not a stale package-lock.json).
    entries = analysis.get("build_tools") or []
    found = {str(t.get("name") if isinstance(t, Mapping) else t).lower() for t in entries}
    used = {str(t.get("name")).lower() for t in entries if isinstance(t, Mapping) and t.get("used")}
    if not found & known:
        languages = analysis.get("languages") or {}
        found = {LANGUAGE_TOOLS[k.lower()] for k in languages if k.lower() in LANGUAGE_TOOLS}
    chosen = []
    for tools in ECOSYSTEMS.values():
        first = next((t for t in tools if t in found & used), None)
        first = first or next((t for t in tools if t in found), None)
        if first:
            chosen.append(first)
    return chosen


def _deployment(analysis: Mapping[str, Any], p: Mapping[str, str]) -> dict[str, str] | None:
    if p.get("deploy", "").lower() in ("false", "no", "0"):
        return None
    if p.get("helm_chart"):
        return {"tool": "helm", "path": p["helm_chart"]}
    if p.get("k8s_manifests"):
        return {"tool": "kubectl", "path": p["k8s_manifests"]}
    paths = _paths(analysis.get("manifests")) + _paths(analysis.get("kubernetes"))
    charts = sorted(str(PurePosixPath(x).parent) for x in paths if x.endswith("Chart.yaml"))
    if charts:
        return {"tool": "helm", "path": charts[0]}
    kube = sorted(
        str(PurePosixPath(x).parent)
        for x in paths
        if x.endswith((".yaml", ".yml")) and PurePosixPath(x).parts[0] in _KUBE_DIRS
    )
    return {"tool": "kubectl", "path": kube[0]} if kube else None


def _dockerfile(analysis: Mapping[str, Any]) -> dict[str, str] | None:
    paths = _paths(analysis.get("dockerfiles"))
    if not paths:
        return None
    path = "Dockerfile" if "Dockerfile" in paths else sorted(paths)[0]
    return {"dockerfile": path, "context": str(PurePosixPath(path).parent)}


def dns_name(text: str) -> str:
    """A Kubernetes/registry-safe name: lowercase letters, digits and dashes."""
    name = re.sub(r"[^a-z0-9-]+", "-", text.lower()).strip("-")
    return name[:63] or "app"


def plan(analysis: Mapping[str, Any], parameters: Mapping[str, str]) -> dict[str, Any]:
    """Everything the built-in templates use; user parameters override the defaults and are
    passed through, so a custom template can use its own.

    Raises:
        ValueError: the analysis names no build tool, language or Dockerfile to build from.
    """
    p = {**DEFAULTS, **{k: str(v) for k, v in parameters.items()}}
    app = dns_name(p.get("app_name") or str(analysis.get("name") or "app"))
    manifests = {PurePosixPath(x).name for x in _paths(analysis.get("manifests"))}
    toolchains = [_toolchain(t, p, manifests) for t in choose_tools(analysis, p.get("build_tool"))]
    image = _dockerfile(analysis)
    if not toolchains and image is None:
        raise ValueError(
            "the analysis names no build tool, known language or Dockerfile: pass "
            "--param build_tool=maven|gradle|npm|yarn|pnpm|pip|poetry|uv|go|cargo|dotnet"
        )
    return {
        **p,
        "app_name": app,
        "namespace": dns_name(p.get("namespace") or app),
        "toolchains": toolchains,
        "image": image,
        "deploy": _deployment(analysis, p),
    }
