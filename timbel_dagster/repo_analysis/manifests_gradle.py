"""Gradle build scripts (Groovy and Kotlin DSL), settings files and version catalogs.

Build scripts are programs, so this reads the common declarative forms only:
`implementation("g:a:v")`, `implementation 'g:a:v'`, `implementation group: 'g', name: 'a',
version: 'v'` (and Kotlin's `group = ...`), `platform(...)`/`enforcedPlatform(...)`,
`kotlin("stdlib")`, catalog accessors `libs.x.y` and `libs.bundles.x` (from
`gradle/libs.versions.toml`), the `plugins` block (`id("x") version "v"`, `kotlin("jvm")`,
`alias(libs.plugins.x)`) and buildscript `classpath`. `$name`/`${name}` are substituted
from gradle.properties and simple `ext`/`def`/`val` string assignments.
"""

from __future__ import annotations

import re
import tomllib
from typing import Any

from timbel_dagster.repo_analysis.manifests_maven import PLATFORMS, platform_of, platform_version
from timbel_dagster.repo_analysis.model import Findings, FrameworkHint
from timbel_dagster.repo_analysis.walk import Tree, parent_of

BUILD_FILES = ("build.gradle", "build.gradle.kts")
SETTINGS_FILES = ("settings.gradle", "settings.gradle.kts")
_CONF = (
    r"\b(?P<conf>(?:[a-z][A-Za-z0-9]*)?(?:[Ii]mplementation|[Aa]pi|[Cc]ompileOnly|[Rr]untimeOnly"
    r"|[Cc]ompile|[Aa]nnotationProcessor|kapt|ksp|developmentOnly|classpath))"
)
_WRAP = r"\s*\(?\s*(?:(?:enforcedPlatform|platform|testFixtures)\s*\(\s*)?"
_STRING = re.compile(_CONF + _WRAP + r"(?P<q>['\"])(?P<coordinate>[^'\"\n]+)(?P=q)")
_MAP = re.compile(
    _CONF + r"\s*\(?\s*group\s*[:=]\s*(?P<q1>['\"])(?P<group>[^'\"]+)(?P=q1)\s*,\s*"
    r"name\s*[:=]\s*(?P<q2>['\"])(?P<name>[^'\"]+)(?P=q2)"
    r"(?:\s*,\s*version\s*[:=]\s*(?:(?P<q3>['\"])(?P<version>[^'\"]+)(?P=q3)"
    r"|(?P<version_name>[A-Za-z_][\w.]*)))?"
)
_CATALOG = re.compile(_CONF + _WRAP + r"libs\.(?P<alias>[A-Za-z0-9_.]+)")
_KOTLIN = re.compile(
    _CONF + r"\s*\(?\s*kotlin\s*\(\s*\"(?P<module>[\w-]+)\"(?:\s*,\s*\"(?P<version>[^\"]+)\")?"
)
_PLUGIN = re.compile(
    r"\b(?:id\s*\(?\s*(?P<q>['\"])(?P<id>[\w.-]+)(?P=q)|kotlin\s*\(\s*\"(?P<kotlin>[\w-]+)\")"
    r"\s*\)?(?:\s*version\s*\(?\s*(?P<q2>['\"])(?P<version>[^'\"]+)(?P=q2))?"
)
_PLUGIN_ALIAS = re.compile(r"\balias\s*\(\s*libs\.plugins\.(?P<alias>[A-Za-z0-9_.]+)")
_APPLY = re.compile(r"\bapply\s+plugin\s*:\s*['\"](?P<id>[\w.-]+)['\"]")
_ASSIGN = re.compile(r"\b(?P<name>[A-Za-z_]\w*)\s*=\s*(?P<q>['\"])(?P<value>[^'\"$\n]*)(?P=q)")
_EXTRA = re.compile(
    r"\b(?:extra\[|set\()\s*\"(?P<name>\w+)\"\s*(?:\]\s*=|,)\s*\"(?P<value>[^\"$\n]*)\""
)
_VARIABLE = re.compile(r"\$\{?(?P<name>[A-Za-z_][\w.]*)\}?")
_INCLUDE = re.compile(r"\binclude\s*\(?(?P<args>[^)\n]+)\)?")
# A string or comment left open runs to the end of its line (string) or of the file
# (comment), as the compiler reads it, so that once started a match always succeeds and is
# never retried from inside: retrying made `"\"\"\"...\` or `/*/*/*...` quadratic.
_CODE = re.compile(
    r"(\"(?:\\.|[^\"\\\n])*(?:\"|(?=\n)|\\?\Z)|'(?:\\.|[^'\\\n])*(?:'|(?=\n)|\\?\Z))|//[^\n]*"
    r"|/\*.*?(?:\*/|\Z)",
    re.DOTALL,
)
_BRACE = re.compile(r"[{}]")
# platform groupId prefix -> the Gradle plugin that applies the platform
PLATFORM_PLUGINS = {
    "org.springframework.boot": "org.springframework.boot",
    "io.quarkus": "io.quarkus",
}


def strip_comments(text: str) -> str:
    """Groovy/Kotlin source without comments, strings kept (`//` inside URLs survives)."""
    return _CODE.sub(lambda m: m.group(1) or "", text)


def _closing_braces(text: str) -> dict[int, int]:
    """The offset of each `{` that is closed -> the offset of its `}`, in one pass."""
    closing: dict[int, int] = {}
    opened: list[int] = []
    for brace in _BRACE.finditer(text):
        if brace.group() == "{":
            opened.append(brace.start())
        elif opened:
            closing[opened.pop()] = brace.start()
    return closing


def blocks(text: str, name: str) -> str:
    """The bodies of every closed `name { ... }` block in `text` (nested in other blocks
    too), joined; one inside another `name` block is part of that block's body already.

    Braces are paired once for the whole text, so many unclosed blocks cost one pass, not
    one pass each.
    """
    closing = _closing_braces(text)
    bodies: list[str] = []
    taken_until = -1
    for match in re.finditer(rf"\b{name}\s*\{{", text):
        close = closing.get(match.end() - 1)
        if close is None or match.start() < taken_until:
            continue
        bodies.append(text[match.end() : close])
        taken_until = close
    return "\n".join(bodies)


def _properties(tree: Tree, path: str) -> dict[str, str]:
    values: dict[str, str] = {}
    for candidate in ("gradle.properties", f"{parent_of(path)}/gradle.properties"):
        candidate = candidate.lstrip("/")
        if candidate in tree.files:
            try:
                text = tree.read_text(candidate)
            except ValueError as error:
                raise ValueError(f"{candidate}: {error}") from None
            for line in text.splitlines():
                key, sep, value = line.partition("=")
                if sep and not key.lstrip().startswith(("#", "!")):
                    values[key.strip()] = value.strip()
    return values


def _substitute(value: str, variables: dict[str, str]) -> str:
    def lookup(match: re.Match[str]) -> str:
        name = match.group("name")
        return variables.get(name) or variables.get(name.rpartition(".")[2]) or match.group(0)

    return _VARIABLE.sub(lookup, value)


def _catalog(tree: Tree, findings: Findings) -> dict[str, Any]:
    """gradle/libs.versions.toml as accessor -> coordinate (and plugins, bundles)."""
    path = "gradle/libs.versions.toml"
    if path not in tree.files:
        return {"libraries": {}, "plugins": {}, "bundles": {}}
    result: dict[str, Any] = {"libraries": {}, "plugins": {}, "bundles": {}}
    with findings.guarded(path, "libs.versions.toml"):
        data = tomllib.loads(tree.read_text(path))
        versions = data.get("versions", {})

        def version_of(entry: dict[str, Any]) -> str | None:
            version = entry.get("version")
            if isinstance(version, dict):
                if "ref" in version:
                    version = versions.get(version["ref"])
                else:
                    version = version.get("strictly") or version.get("require")
            if isinstance(version, dict):
                version = version.get("strictly") or version.get("require")
            return version if isinstance(version, str) else None

        for alias, entry in data.get("libraries", {}).items():
            if isinstance(entry, str):
                group, _, rest = entry.partition(":")
                name, _, version = rest.partition(":")
                coordinate = (group, name, version or None)
            else:
                module = entry.get("module") or f"{entry.get('group')}:{entry.get('name')}"
                group, _, name = module.partition(":")
                coordinate = (group, name, version_of(entry))
            result["libraries"][_accessor(alias)] = coordinate
        for alias, entry in data.get("plugins", {}).items():
            if isinstance(entry, str):
                plugin, _, version = entry.partition(":")
                result["plugins"][_accessor(alias)] = (plugin, version or None)
            else:
                result["plugins"][_accessor(alias)] = (entry.get("id"), version_of(entry))
        for alias, members in data.get("bundles", {}).items():
            result["bundles"][_accessor(alias)] = [_accessor(m) for m in members]
        findings.manifests.append(
            {
                "path": path,
                "kind": "libs.versions.toml",
                "libraries": len(result["libraries"]),
                "plugins": len(result["plugins"]),
            }
        )
    return result


def _accessor(alias: str) -> str:
    """Catalog aliases `spring-boot`, `spring_boot` and `spring.boot` are one accessor."""
    return re.sub(r"[-_.]", ".", alias)


def _scope(configuration: str) -> str:
    if configuration.startswith("test") or "Test" in configuration:
        return "test"
    if configuration in ("developmentOnly", "compileOnly", "kapt", "ksp", "classpath") or (
        configuration.lower().endswith("annotationprocessor")
    ):
        return "dev"
    return "runtime"


def collect(tree: Tree, findings: Findings) -> None:
    """Parse every Gradle build and settings script in `tree`."""
    builds = [p for p in tree.files if p.rpartition("/")[2] in BUILD_FILES]
    settings = [p for p in tree.files if p.rpartition("/")[2] in SETTINGS_FILES]
    if not builds and not settings:
        return
    catalog = _catalog(tree, findings)
    shared: dict[str, str] = {}  # the root scripts' variables and plugin versions reach modules
    for path in settings + [p for p in builds if "/" not in p]:
        with findings.guarded(path, path.rpartition("/")[2]):
            shared.update(_variables(strip_comments(tree.read_text(path))))
    for path in settings:
        with findings.guarded(path, path.rpartition("/")[2]):
            _settings(path, strip_comments(tree.read_text(path)), findings)
    for path in builds:
        with findings.guarded(path, path.rpartition("/")[2]):
            variables = {**_properties(tree, path), **shared}
            text = strip_comments(tree.read_text(path))
            _build(path, text, variables, catalog, findings)


def _variables(text: str) -> dict[str, str]:
    found = {
        m.group("name"): m.group("value")
        for pattern in (_ASSIGN, _EXTRA)
        for m in pattern.finditer(text)
    }
    for match in _PLUGIN.finditer(blocks(text, "plugins")):  # versions for the modules
        if match.group("id") and match.group("version"):
            found[f"plugin:{match.group('id')}"] = match.group("version")
    return found


def _settings(path: str, text: str, findings: Findings) -> None:
    modules: list[str] = []
    for match in _INCLUDE.finditer(text):
        modules.extend(re.findall(r"['\"]:?([^'\"]+)['\"]", match.group("args")))
    name = re.search(r"rootProject\.name\s*=\s*['\"]([^'\"]+)['\"]", text)
    findings.tool("gradle", path)
    findings.manifests.append(
        {
            "path": path,
            "kind": path.rpartition("/")[2],
            "root_project": name.group(1) if name else None,
            "modules": modules,
        }
    )


def _plugins(
    text: str, variables: dict[str, str], catalog: dict[str, Any]
) -> dict[str, str | None]:
    """Plugin id -> version, the version from the root or settings script when not here."""
    plugins: dict[str, str | None] = {}
    declared = blocks(text, "plugins")
    for match in _PLUGIN.finditer(declared):
        plugin = match.group("id") or f"org.jetbrains.kotlin.{match.group('kotlin')}"
        version = match.group("version")
        plugins[plugin] = _substitute(version, variables) if version else None
    for match in _PLUGIN_ALIAS.finditer(declared):
        plugin, version = catalog["plugins"].get(_accessor(match.group("alias")), (None, None))
        if plugin:
            plugins[plugin] = version
    for match in _APPLY.finditer(text):
        plugins.setdefault(match.group("id"), None)
    return {p: v or variables.get(f"plugin:{p}") for p, v in plugins.items()}


def _build(
    path: str,
    text: str,
    variables: dict[str, str],
    catalog: dict[str, Any],
    findings: Findings,
) -> None:
    variables = {**variables, **_variables(text)}
    plugins = _plugins(text, variables, catalog)
    found: list[tuple[str, str, str, str | None]] = []  # configuration, group, name, version
    for match in _STRING.finditer(text):
        parts = _substitute(match.group("coordinate"), variables).split("@")[0].split(":")
        if len(parts) >= 2 and all(parts[:2]):
            found.append((match.group("conf"), parts[0], parts[1], parts[2] if parts[2:] else None))
    for match in _MAP.finditer(text):
        version = match.group("version")
        if match.group("version_name"):  # Kotlin: `version = someVal`
            version = f"${{{match.group('version_name')}}}"
        version = _substitute(version, variables) if version else None
        found.append((match.group("conf"), match.group("group"), match.group("name"), version))
    for match in _KOTLIN.finditer(text):
        group, name = "org.jetbrains.kotlin", f"kotlin-{match.group('module')}"
        found.append((match.group("conf"), group, name, match.group("version")))
    for match in _CATALOG.finditer(text):
        alias = _accessor(match.group("alias"))
        if alias.startswith("bundles."):
            aliases = catalog["bundles"].get(alias[len("bundles.") :], [])
        else:
            aliases = [alias]
        for member in aliases:
            if member in catalog["libraries"]:
                found.append((match.group("conf"), *catalog["libraries"][member]))
    platforms: dict[str, str] = {}
    for prefix, plugin in PLATFORM_PLUGINS.items():
        if plugin in plugins:
            version = plugins[plugin]
            findings.framework_hints.append(FrameworkHint(PLATFORMS[prefix][0], version, path))
            if version:
                platforms[prefix] = version
    for _, group, name, version in found:  # BOMs and the buildscript's plugin artifacts
        prefix = platform_of(group, name)
        if prefix and version and "$" not in version:
            platforms.setdefault(prefix, version)
            findings.framework_hints.append(FrameworkHint(PLATFORMS[prefix][0], version, path))
    findings.tool("gradle", path)
    for configuration, group, name, version in found:
        if configuration == "classpath":
            continue  # the build's own plugins, not the project's dependencies
        version = version or platform_version(group, platforms)
        findings.depend("maven", f"{group}:{name}", version, _scope(configuration), path)
    findings.manifests.append(
        {
            "path": path,
            "kind": path.rpartition("/")[2],
            "plugins": dict(sorted(plugins.items())),
            "dependencies": sum(1 for c, *_ in found if c != "classpath"),
        }
    )
