""".NET projects: *.csproj/*.fsproj/*.vbproj, central package versions, NuGet lockfiles.

A project's `PackageReference` (Include or Update, `Version` as attribute or element, `$(...)`
from the project's own properties) takes its version from packages.lock.json beside it when
present, else from the declaration, else from the closest Directory.Packages.props (central
package management). `PrivateAssets="all"` marks a development-only package; every package of
a test project (one referencing Microsoft.NET.Test.Sdk or saying IsTestProject) is test scope.
The project SDK Microsoft.NET.Sdk.Web means ASP.NET Core at the target framework's version.
packages.config (the older format) is read too.
"""

from __future__ import annotations

import json
import re
import xml.etree.ElementTree as ET
from typing import Any

from timbel_dagster.repo_analysis.formats import child_text, parse_xml
from timbel_dagster.repo_analysis.model import Findings, FrameworkHint
from timbel_dagster.repo_analysis.walk import Tree, parent_of

PROJECT_SUFFIXES = (".csproj", ".fsproj", ".vbproj")
_PROPERTY = re.compile(r"\$\(([^()]+)\)")  # no `(` inside: `$($($(...` stays linear
_FRAMEWORK_VERSION = re.compile(r"^net(?:coreapp)?(\d+\.\d+)")


def _attribute_or_child(element: ET.Element, name: str) -> str | None:
    return element.get(name) or child_text(element, name)


def _central_versions(tree: Tree, path: str, findings: Findings) -> dict[str, str]:
    """Package -> version from a Directory.Packages.props (central package management)."""
    versions: dict[str, str] = {}
    with findings.guarded(path, "Directory.Packages.props"):
        for element in parse_xml(tree.read_text(path)).iter("PackageVersion"):
            if element.get("Include") and element.get("Version"):
                versions[element.get("Include", "")] = element.get("Version", "")
    return versions


def _lock(tree: Tree, directory: str) -> dict[str, dict[str, Any]]:
    """Package -> entry from a packages.lock.json beside the project (all frameworks)."""
    path = f"{directory}/packages.lock.json".lstrip("/")
    if path not in tree.files:
        return {}
    try:
        data = json.loads(tree.read_text(path))
    except json.JSONDecodeError as error:
        raise ValueError(f"{path}: invalid JSON: {error}") from None
    entries: dict[str, dict[str, Any]] = {}
    for framework in (data.get("dependencies") or {}).values():
        for name, entry in (framework or {}).items():
            entries.setdefault(name, entry)
    return entries


def _project(tree: Tree, path: str, findings: Findings, central: dict[str, str]) -> None:
    root = parse_xml(tree.read_text(path))
    if root.tag != "Project":
        raise ValueError(f"root element is <{root.tag}>, not <Project>")
    sdk = root.get("Sdk") or next((e.get("Name") for e in root.iter("Sdk")), None)
    properties = {
        e.tag: (e.text or "").strip()
        for group in root.iter("PropertyGroup")
        for e in group
        if isinstance(e.tag, str)
    }
    frameworks = properties.get("TargetFramework") or properties.get("TargetFrameworks") or ""
    targets = [f for f in frameworks.split(";") if f]
    references = root.findall(".//PackageReference")
    names = {r.get("Include") or r.get("Update") for r in references}
    test_project = properties.get("IsTestProject", "").lower() == "true" or (
        "Microsoft.NET.Test.Sdk" in names
    )
    locked = _lock(tree, parent_of(path))
    findings.tool("dotnet", path)
    for reference in references:
        name = reference.get("Include") or reference.get("Update")
        if not name:
            continue
        declared = _attribute_or_child(reference, "VersionOverride") or _attribute_or_child(
            reference, "Version"
        )
        if declared:
            declared = _PROPERTY.sub(lambda m: properties.get(m.group(1), m.group(0)), declared)
        version = (locked.get(name) or {}).get("resolved") or declared or central.get(name)
        private = (_attribute_or_child(reference, "PrivateAssets") or "").lower() == "all"
        scope = "test" if test_project else "dev" if private else "runtime"
        findings.depend("nuget", name, version, scope, path)
    for name, entry in sorted(locked.items()):
        if entry.get("type") == "Transitive":
            scope = "test" if test_project else "runtime"
            findings.depend("nuget", name, entry.get("resolved"), scope, path, False)
    if sdk == "Microsoft.NET.Sdk.Web":
        match = _FRAMEWORK_VERSION.match(targets[0]) if targets else None
        findings.framework_hints.append(
            FrameworkHint("ASP.NET Core", match.group(1) if match else None, path)
        )
    findings.manifests.append(
        {
            "path": path,
            "kind": path.rpartition(".")[2],
            "sdk": sdk,
            "target_frameworks": targets,
            "test_project": test_project,
            "dependencies": len(references),
        }
    )


def _packages_config(tree: Tree, path: str, findings: Findings) -> None:
    root = parse_xml(tree.read_text(path))
    packages = root.findall("package")
    findings.tool("dotnet", path)
    for package in packages:
        if package.get("id"):
            development = package.get("developmentDependency", "").lower() == "true"
            scope = "dev" if development else "runtime"
            findings.depend("nuget", package.get("id", ""), package.get("version"), scope, path)
    findings.manifests.append(
        {"path": path, "kind": "packages.config", "dependencies": len(packages)}
    )


def collect(tree: Tree, findings: Findings) -> None:
    """Parse every .NET project file, packages.config and solution in `tree`."""
    central: dict[str, dict[str, str]] = {}  # Directory.Packages.props path -> versions
    for path in tree.files:
        name = path.rpartition("/")[2]
        if name.endswith(PROJECT_SUFFIXES):
            props = tree.nearest(parent_of(path), "Directory.Packages.props")
            if props is not None and props not in central:
                central[props] = _central_versions(tree, props, findings)
            with findings.guarded(path, name.rpartition(".")[2]):
                _project(tree, path, findings, central.get(props or "", {}))
        elif name == "packages.config":
            with findings.guarded(path, "packages.config"):
                _packages_config(tree, path, findings)
        elif name.endswith(".sln"):
            findings.tool("dotnet", path)
