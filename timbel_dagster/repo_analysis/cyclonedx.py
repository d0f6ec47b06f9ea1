"""A repository analysis as a CycloneDX 1.5 JSON software bill of materials.

One component per distinct package URL (purl: `pkg:npm/...`, `pkg:maven/group/artifact@v`,
`pkg:pypi/...`, `pkg:golang/...`, `pkg:cargo/...`, `pkg:nuget/...`). A version goes into the
purl only when it is a concrete version; a declared range (`^1.2`, `>=2.1`) is kept as the
property `timbel:declared-version` instead. Development and test packages have scope
`excluded` (not part of what runs). The dependency graph says which packages the repository
depends on directly; lockfiles do not give the edges between the others, so those components
carry no graph entry (CycloneDX reads that as "unknown").
"""

from __future__ import annotations

import datetime as dt
import json
import os
import re
import tempfile
import uuid
from importlib import metadata
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from timbel_dagster.repo_analysis.model import Dependency

if TYPE_CHECKING:
    from timbel_dagster.repo_analysis.analysis import RepositoryAnalysis

SPEC_VERSION = "1.5"
REPOSITORY_REF = "repository"
_CONCRETE = re.compile(r"^v?\d[0-9A-Za-z.+_-]*$")
_WILDCARD = re.compile(r"(?:^|\.)[xX*](?:\.|$)")


def concrete(version: str | None) -> bool:
    """Whether `version` names one version rather than a range or a tag like `latest`."""
    return bool(version and _CONCRETE.match(version) and not _WILDCARD.search(version))


def _coordinates(dependency: Dependency) -> tuple[str | None, str]:
    """(namespace, name) in purl terms."""
    name = dependency.name
    if dependency.ecosystem == "maven":
        group, _, artifact = name.partition(":")
        return group, artifact
    if dependency.ecosystem in ("npm", "golang") and "/" in name:
        namespace, _, last = name.rpartition("/")
        return namespace, last
    return None, name.lower() if dependency.ecosystem == "pypi" else name


def purl(dependency: Dependency) -> str:
    """The package URL of a dependency, with its version when that is concrete."""
    namespace, name = _coordinates(dependency)
    parts = [quote(segment, safe="") for segment in (namespace or "").split("/") if segment]
    parts.append(quote(name, safe=""))
    version = f"@{quote(dependency.version, safe='')}" if concrete(dependency.version) else ""
    return f"pkg:{dependency.ecosystem}/{'/'.join(parts)}{version}"


def _component(dependency: Dependency, reference: str) -> dict[str, Any]:
    namespace, name = _coordinates(dependency)
    component: dict[str, Any] = {"type": "library", "bom-ref": reference}
    if namespace and dependency.ecosystem in ("maven", "npm"):
        component["group"] = namespace
        component["name"] = name
    else:
        component["name"] = dependency.name
    if concrete(dependency.version):
        component["version"] = dependency.version
    component["scope"] = "required" if dependency.scope == "runtime" else "excluded"
    component["purl"] = reference
    component["properties"] = []
    if dependency.version and not concrete(dependency.version):
        component["properties"].append(
            {"name": "timbel:declared-version", "value": dependency.version}
        )
    return component


def _tool_version() -> str | None:
    try:
        return metadata.version("timbel-dagster")
    except metadata.PackageNotFoundError:
        return None


def _repository_name(repository: str) -> str:
    name = repository.rstrip("/").rpartition("/")[2].rpartition(":")[2]
    return name.removesuffix(".git") or repository


def to_cyclonedx(analysis: RepositoryAnalysis) -> dict[str, Any]:
    """A CycloneDX 1.5 JSON document (as a dict) for the analysis's dependencies.

    Args:
        analysis: A finished repository analysis.

    Returns:
        The SBOM: bomFormat, specVersion, a fresh serialNumber, metadata (timestamp, this
        tool, the repository as the described component), components and dependencies.
    """
    components: dict[str, dict[str, Any]] = {}
    direct: list[str] = []
    for dependency in analysis.dependencies:
        reference = purl(dependency)
        component = components.get(reference)
        if component is None:
            component = components[reference] = _component(dependency, reference)
        elif dependency.scope == "runtime":
            component["scope"] = "required"  # runtime anywhere means shipped
        manifest = {"name": "timbel:manifest", "value": dependency.manifest}
        if manifest not in component["properties"]:
            component["properties"].append(manifest)
        if dependency.direct and reference not in direct:
            direct.append(reference)
    tool: dict[str, Any] = {"type": "application", "name": "timbel-dagster"}
    if (version := _tool_version()) is not None:
        tool["version"] = version
    return {
        "$schema": "http://cyclonedx.org/schema/bom-1.5.schema.json",
        "bomFormat": "CycloneDX",
        "specVersion": SPEC_VERSION,
        "serialNumber": f"urn:uuid:{uuid.uuid4()}",
        "version": 1,
        "metadata": {
            "timestamp": dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
            "tools": {"components": [tool]},
            "component": {
                "type": "application",
                "bom-ref": REPOSITORY_REF,
                "name": _repository_name(analysis.repository),
                "properties": [{"name": "timbel:repository", "value": analysis.repository}],
            },
        },
        "components": list(components.values()),
        "dependencies": [{"ref": REPOSITORY_REF, "dependsOn": direct}],
    }


def write_cyclonedx(analysis: RepositoryAnalysis, path: Path) -> dict[str, Any]:
    """Write the SBOM of `analysis` to `path` as JSON, whole or not at all.

    Returns:
        The SBOM written.
    """
    bom = to_cyclonedx(analysis)
    directory = path.parent if str(path.parent) else Path()
    if not directory.is_dir():
        raise ValueError(f"cannot write {path}: directory {directory} does not exist")
    handle, temporary = tempfile.mkstemp(prefix=f".{path.name}.", dir=directory)
    try:
        with os.fdopen(handle, "w", encoding="utf-8") as out:
            json.dump(bom, out, indent=2)
            out.write("\n")
        Path(temporary).replace(path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
    return bom
