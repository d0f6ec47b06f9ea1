"""The README and docs/ stay true: the README's first commands are `make demo` and `make test`,
every table renders as a table, every setting is in docs/configuration.md, every command and
option is in docs/cli.md, and every link between the documents points at a file that exists."""

from __future__ import annotations

import re
from pathlib import Path

import click
import pytest
from markdown_it import MarkdownIt

from timbel_dagster.cli.app import main
from timbel_dagster.settings import Settings

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
DOCS = sorted((ROOT / "docs").glob("*.md"))
DOCUMENTS = [README, *DOCS]


def _tokens(path: Path) -> list:
    return MarkdownIt("commonmark").enable("table").parse(path.read_text(encoding="utf-8"))


def test_readme_starts_with_make_demo_then_make_test() -> None:
    """The first commands a reader meets are the two that set everything up."""
    fences = [t for t in _tokens(README) if t.type == "fence"]
    assert fences, "README.md has no code block"
    commands = [line.split("#")[0].strip() for line in fences[0].content.splitlines()]
    assert [c for c in commands if c][:2] == ["make demo", "make test"]


def _table_like_lines(path: Path) -> list[int]:
    """Lines outside code blocks that look like table rows (start and end with a pipe)."""
    lines, inside = [], False
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines()):
        if line.startswith("```"):
            inside = not inside
        elif not inside and line.startswith("|") and line.rstrip().endswith("|"):
            lines.append(number)
    return lines


@pytest.mark.parametrize("path", DOCUMENTS, ids=lambda p: p.name)
def test_every_table_renders(path: Path) -> None:
    """A row-like line that markdown does not read as part of a table (no header row or no
    separator row above it) prints as a paragraph of pipes."""
    rendered: set[int] = set()
    tokens = _tokens(path)
    for token in tokens:
        if token.type == "table_open":
            start, end = token.map
            rendered.update(range(start, end))
    stray = [n + 1 for n in _table_like_lines(path) if n not in rendered]
    assert not stray, f"{path.name}: lines {stray} look like table rows but render as text"


def _settings_names() -> set[str]:
    return {
        str(field.validation_alias or name).upper() for name, field in Settings.model_fields.items()
    }


def test_every_setting_is_documented_in_configuration_md() -> None:
    text = (ROOT / "docs" / "configuration.md").read_text(encoding="utf-8")
    documented = set()
    for line in text.splitlines():
        if line.startswith("| `"):
            documented |= set(re.findall(r"`([A-Z][A-Z0-9_]+)`", line.split("|")[1]))
    assert sorted(_settings_names() - documented) == [], "settings missing from the table"
    assert sorted(documented - _settings_names()) == [], (
        "the table names settings the code does not read"
    )


def _leaf_commands(command: click.Command, path: tuple[str, ...] = ()) -> dict:
    if isinstance(command, click.Group):
        found: dict = {}
        for name, sub in command.commands.items():
            found |= _leaf_commands(sub, (*path, name))
        return found
    return {path: command}


def _cli_entries() -> dict[tuple[str, ...], str]:
    """docs/cli.md's reference blocks (```text): an entry is a line starting `timbel ` and
    the indented lines under it; its command is the longest run of words that name one."""
    entries: dict[tuple[str, ...], str] = {}
    for token in _tokens(ROOT / "docs" / "cli.md"):
        if token.type != "fence" or token.info.strip() != "text":
            continue
        current: tuple[str, ...] | None = None
        for line in token.content.splitlines():
            if line.startswith("timbel "):
                words, command, current = line.split()[1:], main, ()
                for word in words:
                    if not isinstance(command, click.Group) or word not in command.commands:
                        break
                    command, current = command.commands[word], (*current, word)
                assert not isinstance(command, click.Group), (
                    f"docs/cli.md: '{line.strip()}' names no command"
                )
                assert current not in entries, f"docs/cli.md: 'timbel {' '.join(current)}' twice"
                entries[current] = line
            elif current is not None and line.startswith(" "):
                entries[current] += "\n" + line
    return entries


def test_every_command_and_option_is_in_cli_md() -> None:
    entries = _cli_entries()
    leaves = _leaf_commands(main)
    assert sorted(" ".join(p) for p in set(leaves) - set(entries)) == [], "commands not in cli.md"
    missing = []
    for path, command in leaves.items():
        for param in command.params:
            if not isinstance(param, click.Option) or param.hidden:
                continue
            longs = [o for o in param.opts if o.startswith("--")]
            if not any(re.search(rf"{re.escape(o)}(?![\w-])", entries[path]) for o in longs):
                missing.append(f"timbel {' '.join(path)} {longs[0]}")
    assert missing == [], "options not in cli.md"


def _anchors(path: Path) -> set[str]:
    """GitHub's heading anchors: lower case, punctuation dropped, spaces as hyphens."""
    anchors, inline = set(), False
    for token in _tokens(path):
        if token.type == "heading_open":
            inline = True
        elif inline and token.type == "inline":
            slug = re.sub(r"[^\w\- ]", "", token.content.lower()).replace(" ", "-")
            anchors.add(slug)
            inline = False
    return anchors


@pytest.mark.parametrize("path", DOCUMENTS, ids=lambda p: p.name)
def test_links_point_at_files_and_headings_that_exist(path: Path) -> None:
    text = path.read_text(encoding="utf-8")
    broken = []
    for target in re.findall(r"\]\(([^)\s]+)\)", text):
        if re.match(r"[a-z]+:", target):
            continue
        file, _, anchor = target.partition("#")
        linked = (path.parent / file) if file else path
        exists = linked.exists()
        if not exists or (anchor and linked.suffix == ".md" and anchor not in _anchors(linked)):
            broken.append(target)
    assert broken == [], f"{path.name} links to files or headings that do not exist"


def test_readme_links_the_reference() -> None:
    text = README.read_text(encoding="utf-8")
    for name in ("cli", "configuration", "architecture", "benchmarks", "operations", "security"):
        assert f"(docs/{name}.md" in text, f"README.md does not link docs/{name}.md"


def test_readme_opens_the_notebook_with_an_extra_that_exists() -> None:
    """The README's notebook command installs JupyterLab through the `jupyter` extra: pinned,
    locked at the same version, and kept out of `dev` so CI does not install it."""
    import tomllib

    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    extras = project["optional-dependencies"]
    assert "pip install -c requirements.lock -e '.[notebook,jupyter]'" in README.read_text(
        encoding="utf-8"
    )
    assert extras["jupyter"] == ["jupyterlab==4.6.6"]
    assert not any("jupyter]" in r or "jupyterlab" in r for r in extras["dev"])
    locked = (ROOT / "requirements.lock").read_text(encoding="utf-8").splitlines()
    assert "jupyterlab==4.6.6" in locked
