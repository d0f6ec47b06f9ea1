"""pip requirements files: PEP 508 lines, `-r` includes, comments, markers, hashes.

Requirement files are `requirements*.txt`, `requirements*.in`, `*.txt` inside a
`requirements/` directory, and any file another one includes with `-r`. Each is read once
and its packages are attributed to it. Options (`-i`, `--hash`, `-c`, `-e` ...) are skipped;
a line that is not a requirement, or an include that is not there, is reported in the
file's entry while the rest of the file still counts.
"""

from __future__ import annotations

import re

from timbel_dagster.repo_analysis.model import Findings, pinned
from timbel_dagster.repo_analysis.walk import Tree, join, parent_of

# Every regex here matches in time linear in the line: no two quantifiers can share
# characters (a lazy `rest` before `\s*`, or `\s*,?\s*` inside a repeated group, backtracked
# exponentially: 60 bytes of `<1 <1 ...` took 0.2 s, each 3 more bytes doubling it).
_REQUIREMENT = re.compile(
    r"^(?P<name>[A-Za-z0-9](?:[A-Za-z0-9._-]*[A-Za-z0-9])?)\s*(?:\[[^\]]*\]\s*)?"
    r"(?P<rest>[^;]*)(?:;(?P<marker>.*))?$"
)
# One clause of a specifier (`>=1.2,`); a `!` is a version's epoch mark unless `!=` follows.
_CLAUSE = re.compile(
    r"(?:~=|===|==|!=|<=|>=|<|>)\s*[A-Za-z0-9](?:[A-Za-z0-9.*+_-]|!(?!=))*\s*,?\s*"
)
_INCLUDE = re.compile(r"^(?:-r|--requirement)(?:\s+|=)?(?P<path>\S+)")
_EGG = re.compile(r"#egg=(?P<name>[A-Za-z0-9._-]+)")


def normalise(name: str) -> str:
    """A Python distribution name in PEP 503 form (`Foo_Bar` -> `foo-bar`)."""
    return re.sub(r"[-_.]+", "-", name).lower()


def is_requirements_file(path: str) -> bool:
    """Whether `path` is named like a requirements file."""
    directory, _, name = path.rpartition("/")
    if name.startswith("requirements") and name.endswith((".txt", ".in")):
        return True
    return directory.rpartition("/")[2] == "requirements" and name.endswith(".txt")


def scope_for(label: str) -> str:
    """`test`/`tests`/`testing` -> test; dev-like names -> dev; anything else -> runtime."""
    label = label.lower()
    if "test" in label:
        return "test"
    if any(word in label for word in ("dev", "lint", "doc", "typing", "style", "build")):
        return "dev"
    return "runtime"


def is_specifier(text: str) -> bool:
    """Whether `text` is a version specification (`>=1.2, <2`, `(==1.0)`), clause by clause
    with no backtracking between clauses."""
    text = text.removeprefix("(").removesuffix(")").lstrip()
    position = 0
    while position < len(text):
        clause = _CLAUSE.match(text, position)
        if clause is None:
            return False
        position = clause.end()
    return position > 0


def parse_requirement(line: str) -> tuple[str, str | None] | None:
    """(normalised name, version or specification) of one PEP 508 requirement, None for
    a line that is not one."""
    line = line.strip()
    if line.startswith(("git+", "hg+", "svn+", "bzr+", "http://", "https://", "file:")):
        egg = _EGG.search(line)
        return (normalise(egg.group("name")), None) if egg else None
    match = _REQUIREMENT.match(line)
    if match is None:
        return None
    rest = match.group("rest").strip()
    if rest.startswith("@"):
        return normalise(match.group("name")), None
    if rest and not is_specifier(rest):
        return None
    spec = re.sub(r"\s+", "", rest.strip("() ")) or None
    return normalise(match.group("name")), pinned(spec)


def _logical_lines(text: str) -> list[tuple[int, str]]:
    """Lines with continuations joined and comments removed, with their first line number."""
    lines: list[tuple[int, str]] = []
    pending, start = "", 0
    for number, raw in enumerate(text.splitlines(), start=1):
        if not pending:
            start = number
        if raw.endswith("\\"):
            pending += raw[:-1] + " "
            continue
        line = re.sub(r"(^|\s)#.*$", "", pending + raw).strip()
        pending = ""
        if line:
            lines.append((start, line))
    return lines


def collect(tree: Tree, findings: Findings) -> None:
    """Parse every requirements file in `tree`, following `-r` includes."""
    queue = [p for p in tree.files if is_requirements_file(p)]
    seen = set(queue)
    while queue:
        path = queue.pop(0)
        with findings.guarded(path, "requirements.txt"):
            for include in _parse(tree, path, findings):
                if include not in seen:
                    seen.add(include)
                    queue.append(include)


def _parse(tree: Tree, path: str, findings: Findings) -> list[str]:
    scope = scope_for(path.rpartition("/")[2].rsplit(".", 1)[0])
    includes: list[str] = []
    problems: list[str] = []
    count = 0
    for number, line in _logical_lines(tree.read_text(path)):
        if include := _INCLUDE.match(line):
            target = join(parent_of(path), include.group("path"))
            if target in tree.files:
                includes.append(target)
            else:
                problems.append(f"line {number}: included file {include.group('path')} not found")
            continue
        if line.startswith("-"):  # -c, -e, -i, --hash ... : options, not packages
            continue
        requirement = parse_requirement(re.split(r"\s--?[a-z]", line, maxsplit=1)[0])
        if requirement is None:
            problems.append(f"line {number}: not a requirement: {line[:80]!r}")
            continue
        findings.depend("pypi", requirement[0], requirement[1], scope, path)
        count += 1
    findings.tool("pip", path)
    entry: dict[str, object] = {
        "path": path,
        "kind": "requirements.txt",
        "includes": includes,
        "dependencies": count,
    }
    if problems:
        entry["error"] = f"{path}: " + "; ".join(problems)
    findings.manifests.append(entry)
    return includes
