"""Maven pom.xml files: coordinates, parents, properties, managed versions, modules.

Poms are read in two passes, so that a module's `<parent>` found in the repository (by
`relativePath`, default `../pom.xml`, else by groupId:artifactId) lends it properties and
`<dependencyManagement>` the way Maven's inheritance does: the parent chain is merged first
and `${...}` is substituted afterwards, so a child's property wins. A version managed outside
the repository stays None, except for the Spring Boot and Quarkus platforms, whose own
artifacts take the platform's version (they are released together).
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field

from timbel_dagster.repo_analysis.formats import child_text, parse_xml
from timbel_dagster.repo_analysis.model import Findings, FrameworkHint
from timbel_dagster.repo_analysis.walk import Tree, join, parent_of

_PROPERTY = re.compile(r"\$\{([^{}]+)\}")  # no `{` inside: `${${${...` stays linear
# groupId prefix of a platform's artifacts -> (framework, parents, BOMs and plugins naming it)
PLATFORMS = {
    "org.springframework.boot": (
        "Spring Boot",
        {
            "spring-boot-starter-parent",
            "spring-boot-dependencies",
            "spring-boot-maven-plugin",
            "spring-boot-gradle-plugin",
        },
    ),
    "io.quarkus": (
        "Quarkus",
        {"quarkus-bom", "quarkus-universe-bom", "quarkus-maven-plugin", "quarkus-gradle-plugin"},
    ),
}


def platform_of(group: str, artifact: str) -> str | None:
    """The platform groupId prefix that artifact `group:artifact` pins, if any."""
    for prefix, (_, artifacts) in PLATFORMS.items():
        if group.startswith(prefix) and artifact in artifacts:
            return prefix
    return None


def platform_version(group: str, platforms: dict[str, str]) -> str | None:
    """The version a platform gives an unversioned artifact of `group`."""
    for prefix, version in platforms.items():
        if group.startswith(prefix):
            return version
    return None


@dataclass
class Pom:
    path: str
    group: str | None
    artifact: str | None
    version: str | None
    packaging: str
    parent: tuple[str, str, str | None, str] | None  # group, artifact, version, relativePath
    properties: dict[str, str] = field(default_factory=dict)
    managed: dict[tuple[str, str], str | None] = field(default_factory=dict)
    dependencies: list[tuple[str, str, str | None, str]] = field(default_factory=list)
    plugins: list[tuple[str, str, str | None]] = field(default_factory=list)
    modules: list[str] = field(default_factory=list)


def _coordinates(
    element: ET.Element, default_group: str | None = None
) -> tuple[str, str, str | None]:
    group = child_text(element, "groupId") or default_group
    artifact = child_text(element, "artifactId")
    if group is None or artifact is None:
        raise ValueError(f"a <{element.tag}> without <groupId> or <artifactId>")
    return group, artifact, child_text(element, "version")


def parse_pom(path: str, text: str) -> Pom:
    """Parse one pom.xml without resolving anything."""
    root = parse_xml(text)
    if root.tag != "project":
        raise ValueError(f"root element is <{root.tag}>, not <project>")
    parent_element = root.find("parent")
    parent = None
    if parent_element is not None:
        group, artifact, version = _coordinates(parent_element)
        # No <relativePath> means ../pom.xml; an empty one means "not in this repository".
        relative_element = parent_element.find("relativePath")
        relative = "../pom.xml" if relative_element is None else (relative_element.text or "")
        parent = (group, artifact, version, relative.strip())
    pom = Pom(
        path=path,
        group=child_text(root, "groupId") or (parent[0] if parent else None),
        artifact=child_text(root, "artifactId"),
        version=child_text(root, "version") or (parent[2] if parent else None),
        packaging=child_text(root, "packaging") or "jar",
        parent=parent,
    )
    properties = root.find("properties")
    for element in properties if properties is not None else []:
        if isinstance(element.tag, str):
            pom.properties[element.tag] = (element.text or "").strip()
    for dependency in root.findall("dependencyManagement/dependencies/dependency"):
        group, artifact, version = _coordinates(dependency)
        pom.managed[(group, artifact)] = version
    for dependency in root.findall("dependencies/dependency"):
        group, artifact, version = _coordinates(dependency)
        pom.dependencies.append((group, artifact, version, child_text(dependency, "scope") or ""))
    for plugin in root.findall("build/plugins/plugin") + root.findall(
        "build/pluginManagement/plugins/plugin"
    ):
        pom.plugins.append(_coordinates(plugin, "org.apache.maven.plugins"))
    pom.modules = [m.text.strip() for m in root.findall("modules/module") if m.text]
    return pom


def _parent_pom(pom: Pom, poms: dict[str, Pom], by_id: dict[tuple[str, str], Pom]) -> Pom | None:
    if pom.parent is None:
        return None
    group, artifact, _, relative = pom.parent
    if relative:
        candidate = join(parent_of(pom.path), relative)
        if not candidate.endswith(".xml"):
            candidate = join(candidate, "pom.xml")
        found = poms.get(candidate)
        if found is not None and (found.group, found.artifact) == (group, artifact):
            return found
    return by_id.get((group, artifact))


def _substitute(value: str | None, properties: dict[str, str]) -> str | None:
    for _ in range(10):  # properties may name properties; a cycle stops here
        if value is None or "${" not in value:
            break
        value = _PROPERTY.sub(lambda m: properties.get(m.group(1), m.group(0)), value)
    return value


def collect(tree: Tree, findings: Findings) -> None:
    """Parse every pom.xml in `tree` and resolve each against its in-repository parents."""
    poms: dict[str, Pom] = {}
    for path in tree.files:
        if path.rpartition("/")[2] == "pom.xml":
            with findings.guarded(path, "pom.xml"):
                poms[path] = parse_pom(path, tree.read_text(path))
    by_id = {(p.group, p.artifact): p for p in poms.values() if p.group and p.artifact}
    for pom in poms.values():
        with findings.guarded(pom.path, "pom.xml"):
            _resolve(pom, poms, by_id, findings)


def _resolve(
    pom: Pom, poms: dict[str, Pom], by_id: dict[tuple[str, str], Pom], findings: Findings
) -> None:
    chain = [pom]
    while (parent := _parent_pom(chain[-1], poms, by_id)) is not None and parent not in chain:
        chain.append(parent)
    properties: dict[str, str] = {}
    managed: dict[tuple[str, str], str | None] = {}
    for ancestor in reversed(chain):  # the root first, so that children override
        properties.update(ancestor.properties)
        managed.update(ancestor.managed)
    version = pom.version or ""
    properties.update(
        {
            "project.version": version,
            "pom.version": version,
            "version": version,
            "project.groupId": pom.group or "",
            "project.artifactId": pom.artifact or "",
        }
    )
    if pom.parent:
        properties.update(
            {"project.parent.version": pom.parent[2] or "", "parent.version": pom.parent[2] or ""}
        )
    version = _substitute(pom.version, properties)
    platforms: dict[str, str] = {}
    pins = [a.parent[:3] for a in chain if a.parent] + [(g, a, v) for (g, a), v in managed.items()]
    for ancestor in chain:
        pins.extend(ancestor.plugins)
    for group, artifact, pinned_version in pins:
        prefix = platform_of(_substitute(group, properties) or group, artifact)
        resolved = _substitute(pinned_version, properties)
        if prefix and resolved and "${" not in resolved:
            platforms.setdefault(prefix, resolved)
            findings.framework_hints.append(FrameworkHint(PLATFORMS[prefix][0], resolved, pom.path))
    findings.tool("maven", pom.path)
    for group, artifact, declared, scope in pom.dependencies:
        resolved = _substitute(declared or managed.get((group, artifact)), properties)
        resolved = resolved or platform_version(group, platforms)
        findings.depend(
            "maven",
            f"{group}:{artifact}",
            resolved,
            "test" if scope == "test" else "runtime",
            pom.path,
        )
    findings.manifests.append(
        {
            "path": pom.path,
            "kind": "pom.xml",
            "group_id": _substitute(pom.group, properties),
            "artifact_id": pom.artifact,
            "version": version,
            "packaging": pom.packaging,
            "parent": ":".join(filter(None, pom.parent[:3])) if pom.parent else None,
            "modules": pom.modules,
            "dependencies": len(pom.dependencies),
            "managed_dependencies": len(managed),
        }
    )
