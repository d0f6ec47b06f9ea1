"""One walk over a repository's tree: every file's relative path and size, read on demand.

The walk uses `os.scandir` once and never follows symbolic links (a link in an untrusted
repository could point outside it, or loop). It skips these directories wherever they are,
because they hold version-control data, installed or vendored third-party code, build output
or caches rather than the repository's own sources and manifests:

- version control: `.git`, `.hg`, `.svn`
- installed or vendored dependencies: `node_modules`, `bower_components`, `jspm_packages`,
  `vendor`, `third_party`, `.venv`, `venv`, `site-packages`, `Pods`, `.bundle`
- build output: `target`, `build`, `dist`, `out`, `obj` (.NET), `.next`, `.nuxt`,
  `.svelte-kit`, `.gradle`, `.terraform`, `.eggs`, `*.egg-info`
- caches and tool state: `__pycache__`, `.tox`, `.nox`, `.mypy_cache`, `.pytest_cache`,
  `.ruff_cache`, `.cache`, `.parcel-cache`, `.idea`, `coverage`, `htmlcov`

Files are read only when a parser asks, and never when larger than the size cap.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

SKIPPED_DIRECTORIES = frozenset(
    {
        ".git",
        ".hg",
        ".svn",
        "node_modules",
        "bower_components",
        "jspm_packages",
        "vendor",
        "third_party",
        ".venv",
        "venv",
        "site-packages",
        "Pods",
        ".bundle",
        "target",
        "build",
        "dist",
        "out",
        "obj",
        ".next",
        ".nuxt",
        ".svelte-kit",
        ".gradle",
        ".terraform",
        ".eggs",
        "__pycache__",
        ".tox",
        ".nox",
        ".mypy_cache",
        ".pytest_cache",
        ".ruff_cache",
        ".cache",
        ".parcel-cache",
        ".idea",
        "coverage",
        "htmlcov",
    }
)
DEFAULT_MAX_FILE_BYTES = 8 * 1024 * 1024  # large enough for real lockfiles


@dataclass
class Tree:
    """The files of a repository: relative POSIX path -> size in bytes."""

    root: Path
    files: dict[str, int]
    max_file_bytes: int = DEFAULT_MAX_FILE_BYTES
    _directories: dict[str, list[str]] | None = field(default=None, repr=False)

    def read_text(self, relative: str) -> str:
        """The text of one file, refused when over the size cap or not UTF-8."""
        size = self.files[relative]
        if size > self.max_file_bytes:
            raise ValueError(
                f"{size:,} bytes, over the {self.max_file_bytes:,}-byte limit for files read"
            )
        data = (self.root / relative).read_bytes()
        try:
            return data.decode("utf-8-sig")  # .NET tools write a byte-order mark
        except UnicodeDecodeError as error:
            raise ValueError(f"not UTF-8 text (byte {error.start})") from None

    def in_directory(self, directory: str) -> list[str]:
        """The names of the files directly inside `directory` ('' for the root)."""
        if self._directories is None:
            grouped: dict[str, list[str]] = {}
            for relative in self.files:
                parent, _, name = relative.rpartition("/")
                grouped.setdefault(parent, []).append(name)
            self._directories = grouped
        return self._directories.get(directory, [])

    def nearest(self, directory: str, name: str) -> str | None:
        """`name` in `directory` or the closest ancestor that has it, as a relative path."""
        current = directory
        while True:
            candidate = f"{current}/{name}" if current else name
            if candidate in self.files:
                return candidate
            if not current:
                return None
            current = current.rpartition("/")[0]


def parent_of(relative: str) -> str:
    """The directory part of a relative path ('' at the root)."""
    return relative.rpartition("/")[0]


def join(directory: str, name: str) -> str:
    """`name` relative to `directory`, normalised: `..` resolved, never above the root."""
    parts: list[str] = []
    for part in PurePosixPath(directory, name).parts:
        if part == "..":
            if parts:
                parts.pop()
        elif part not in (".", "/"):
            parts.append(part)
    return "/".join(parts)


def walk(root: Path, max_file_bytes: int = DEFAULT_MAX_FILE_BYTES) -> Tree:
    """List every regular file under `root` once, skipping `SKIPPED_DIRECTORIES`.

    Args:
        root: The repository's top directory.
        max_file_bytes: Files larger than this are listed (their size counts for languages)
            but never read.

    Returns:
        The tree of files, keyed by POSIX path relative to `root`.
    """
    files: dict[str, int] = {}
    pending: list[tuple[str, str]] = [(os.fspath(root), "")]
    while pending:
        directory, prefix = pending.pop()
        try:
            entries = list(os.scandir(directory))
        except OSError:  # unreadable directory: nothing to list, not a reason to stop
            continue
        for entry in entries:
            if entry.is_symlink():
                continue
            relative = f"{prefix}{entry.name}"
            if entry.is_dir(follow_symlinks=False):
                name = entry.name
                if name not in SKIPPED_DIRECTORIES and not name.endswith(".egg-info"):
                    pending.append((entry.path, f"{relative}/"))
            elif entry.is_file(follow_symlinks=False):
                files[relative] = entry.stat(follow_symlinks=False).st_size
    return Tree(root=root, files=dict(sorted(files.items())), max_file_bytes=max_file_bytes)
