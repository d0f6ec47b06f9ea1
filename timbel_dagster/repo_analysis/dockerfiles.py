"""Dockerfiles: build stages and the external base images they start from.

Files named `Dockerfile`, `Containerfile`, `Dockerfile.*`, `*.Dockerfile` or `*.dockerfile`.
Honoured: the `escape` parser directive, line continuations, comments, heredocs (skipped),
`ARG` before the first `FROM` with `${VAR}`, `$VAR`, `${VAR:-default}` and `${VAR:+alt}`
substituted into `FROM` (an argument without a default stays as written, because its value
comes from `--build-arg`), `--platform=...`, `AS name`, and `FROM <earlier stage>`, which is a
stage, not a base image. `scratch` is no image.
"""

from __future__ import annotations

import re
from typing import Any

from timbel_dagster.repo_analysis.model import Findings
from timbel_dagster.repo_analysis.tool_usage import short as _short
from timbel_dagster.repo_analysis.tool_usage import tools_run
from timbel_dagster.repo_analysis.walk import Tree

_VARIABLE = re.compile(r"\$(?:\{(?P<braced>\w+)(?::(?P<op>[-+])(?P<word>[^}]*))?\}|(?P<bare>\w+))")
_HEREDOC = re.compile(r"<<-?\s*[\"']?(?P<delimiter>\w+)[\"']?")
_DIRECTIVE = re.compile(r"^#\s*(?P<name>\w+)\s*=\s*(?P<value>\S+)\s*$")


def is_dockerfile(name: str) -> bool:
    """Whether a file called `name` is a Dockerfile."""
    lowered = name.lower()
    return (
        name in ("Dockerfile", "Containerfile")
        or name.startswith(("Dockerfile.", "Containerfile."))
        or lowered.endswith((".dockerfile", ".containerfile"))
    )


def _instructions(text: str) -> list[tuple[int, str]]:
    """(line number, instruction) with continuations joined, comments and heredoc bodies
    dropped."""
    lines = text.splitlines()
    escape = "\\"
    for line in lines:  # parser directives come first, before any instruction or blank
        directive = _DIRECTIVE.match(line)
        if directive is None:
            break
        if directive.group("name").lower() == "escape":
            escape = directive.group("value")
    instructions: list[tuple[int, str]] = []
    pending, start, heredoc = "", 0, None
    for number, raw in enumerate(lines, start=1):
        if heredoc is not None:
            heredoc = None if raw.strip() == heredoc else heredoc
            continue
        stripped = raw.strip()
        if stripped.startswith("#") or (not stripped and not pending):
            continue
        if not pending:
            start = number
        if stripped.endswith(escape):
            pending += stripped[: -len(escape)] + " "
            continue
        instruction = (pending + stripped).strip()
        pending = ""
        instructions.append((start, instruction))
        if match := _HEREDOC.search(instruction):
            heredoc = match.group("delimiter")
    if pending.strip():
        instructions.append((start, pending.strip()))
    return instructions


def _substitute(value: str, arguments: dict[str, str | None]) -> str:
    def replace(match: re.Match[str]) -> str:
        name = match.group("braced") or match.group("bare")
        current = arguments.get(name)
        if match.group("op") == "-":
            return current or match.group("word")
        if match.group("op") == "+":
            return match.group("word") if current else ""
        return current if current is not None else match.group(0)

    return _VARIABLE.sub(replace, value)


def parse_dockerfile(text: str) -> list[dict[str, Any]]:
    """The stages of a Dockerfile: index, name, base (image or earlier stage), platform."""
    arguments: dict[str, str | None] = {}
    stages: list[dict[str, Any]] = []
    for number, instruction in _instructions(text):
        keyword, _, rest = instruction.partition(" ")
        keyword = keyword.upper()
        if keyword == "ARG" and not stages:
            for declaration in rest.split():
                name, equals, default = declaration.partition("=")
                arguments[name] = _substitute(default.strip("\"'"), arguments) if equals else None
        elif keyword == "FROM":
            words = [w for w in rest.split() if not w.startswith("--platform")]
            platform = next((w.split("=", 1)[1] for w in rest.split() if "--platform=" in w), None)
            if not words or words[0].startswith("--"):
                raise ValueError(f"line {number}: FROM without an image")
            name = words[2] if len(words) >= 3 and words[1].upper() == "AS" else None
            base = _substitute(words[0], arguments)
            earlier = {s["name"].lower(): s["name"] for s in stages if s["name"]}
            stages.append(
                {
                    "index": len(stages),
                    "name": name,
                    "base": base,
                    "platform": _substitute(platform, arguments) if platform else None,
                    "from_stage": earlier.get(base.lower()),
                }
            )
    if not stages:
        raise ValueError("no FROM instruction")
    return stages


def collect(tree: Tree, findings: Findings) -> None:
    """Parse every Dockerfile in `tree`."""
    for path in tree.files:
        if not is_dockerfile(path.rpartition("/")[2]):
            continue
        with findings.guarded(path, "Dockerfile"):
            text = tree.read_text(path)
            stages = parse_dockerfile(text)
            images = [s["base"] for s in stages if not s["from_stage"] and s["base"] != "scratch"]
            base_images = list(dict.fromkeys(images))
            findings.dockerfiles.append(
                {"path": path, "stages": stages, "base_images": base_images}
            )
            findings.manifests.append(
                {"path": path, "kind": "Dockerfile", "stages": len(stages), "images": base_images}
            )
            findings.tool("docker", path)
            for number, instruction in _instructions(text):
                if instruction[:4].upper() == "RUN ":
                    for tool in tools_run(instruction[4:]):
                        findings.ran(tool, path, "Dockerfile RUN", _short(instruction), number)
