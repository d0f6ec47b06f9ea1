"""Which build tools the repository's own scripts run, and the `build_tools` report.

A build tool is found by its files (a lockfile, a manifest, a Dockerfile, a chart) and is
*used* when something that runs builds names it: the `packageManager` field of a
package.json (Corepack enforces it), a package.json script, a Dockerfile `RUN` instruction or
a command in a CI file. A repository can hold several (a stale `package-lock.json` beside the
`yarn.lock` its scripts use); every one is reported with its evidence and whether it is used.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

from timbel_dagster.repo_analysis.model import Findings

JS_TOOLS = ("pnpm", "yarn", "npm")
# A tool's command, at a command position: the start, after whitespace, a shell operator,
# a bracket or a quote (`sh 'npm ci'`, `"build": "yarn tsc"`, `- ./gradlew test`).
_START = r"(?:^|(?<=[\s;&|(`'\"]))"
_END = r"(?=[\s;&|)`'\"]|$)"
_COMMANDS = {
    # npx/pnpx/dlx only run a package, whatever installs the project: not counted
    "npm": r"npm",
    "yarn": r"yarn",
    "pnpm": r"pnpm",
    "maven": r"(?:\./)?mvnw?",
    "gradle": r"(?:\./)?gradlew?",
    "pip": r"(?:pip3?|python3?\s+-m\s+pip)",
    "poetry": r"poetry",
    "uv": r"uv\s+(?:sync|run|pip|lock|build|venv|tool|add|export)",
    "go": r"go\s+(?:build|test|run|mod|vet|install|generate|get)",
    "cargo": r"cargo",
    "dotnet": r"dotnet",
    "docker": r"docker\s+(?:build|buildx|push|compose)",
    "helm": r"helm\s+(?:upgrade|install|package|template|lint|push)",
}
_PATTERNS = {tool: re.compile(_START + command + _END) for tool, command in _COMMANDS.items()}
# Lines that describe rather than run: comments, YAML names and descriptions, `echo`, and
# Jenkinsfile stage names (`stage('yarn build')`).
_PROSE = re.compile(
    r"^\s*(?:#|//|\*|(?:-\s*)?(?:name|description|title|summary)\s*:|(?:-\s*)?echo\s|stage\s*\()"
)


def tools_run(command: str) -> list[str]:
    """The build tools a command line runs, in the order of `_COMMANDS`."""
    return [tool for tool, pattern in _PATTERNS.items() if pattern.search(command)]


def command_lines(text: str) -> Iterator[tuple[int, str, list[str]]]:
    """(line number, stripped line, tools it runs) of each line of a CI file that runs one."""
    for number, line in enumerate(text.splitlines(), start=1):
        if _PROSE.match(line):
            continue
        tools = tools_run(line)
        if tools:
            yield number, line.strip(), tools


def scan_ci_file(findings: Findings, path: str, text: str) -> None:
    """Record the build tools each command of a CI file runs."""
    for number, line, tools in command_lines(text):
        for tool in tools:
            findings.ran(tool, path, "ci", short(line), number)


def short(text: str, limit: int = 120) -> str:
    """`text` on one line, cut to `limit` characters."""
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def report(findings: Findings) -> list[dict[str, Any]]:
    """The `build_tools` of an analysis: every tool found, with its evidence and whether the
    repository's scripts use it.

    A script's use counts for a tool the files show, and for any JavaScript package manager
    once the repository has a package.json (Yarn run by the Dockerfile beside a lone
    package-lock.json is Yarn in use); a CI file installing some unrelated tool does not make
    the repository a project of that tool.
    """
    has_package_json = any(m.get("kind") == "package.json" for m in findings.manifests)
    evidence = {name: list(items) for name, items in findings.tool_evidence.items()}
    used: set[str] = set()
    for name, item in findings.runs:
        if name in evidence or (name in JS_TOOLS and has_package_json):
            evidence.setdefault(name, []).append(item)
            used.add(name)
    tools = []
    for name in sorted(evidence):
        unique = {(e["path"], e["line"] or 0, e["kind"], e["detail"]): e for e in evidence[name]}
        items = [unique[key] for key in sorted(unique)]
        tools.append(
            {
                "name": name,
                "paths": sorted({e["path"] for e in items}),
                "used": name in used,
                "evidence": items,
            }
        )
    return tools
