"""Bytes of source per language, by file extension or name, in the manner of GitHub linguist.

Like linguist's language bar, only programming and markup languages count: data formats
(JSON, YAML, XML, TOML), prose (Markdown) and anything not in the table (binaries, images,
archives) do not. Generated files (minified bundles, protobuf and gRPC output, designer
code) are skipped; vendored directories never reach here (see `walk`).
"""

from __future__ import annotations

import re

EXTENSIONS: dict[str, str] = {
    ".py": "Python",
    ".pyi": "Python",
    ".pyx": "Cython",
    ".ipynb": "Jupyter Notebook",
    ".js": "JavaScript",
    ".mjs": "JavaScript",
    ".cjs": "JavaScript",
    ".jsx": "JavaScript",
    ".ts": "TypeScript",
    ".mts": "TypeScript",
    ".cts": "TypeScript",
    ".tsx": "TypeScript",
    ".java": "Java",
    ".kt": "Kotlin",
    ".kts": "Kotlin",
    ".scala": "Scala",
    ".sc": "Scala",
    ".groovy": "Groovy",
    ".gradle": "Groovy",
    ".jenkinsfile": "Groovy",
    ".go": "Go",
    ".rs": "Rust",
    ".c": "C",
    ".h": "C",
    ".cc": "C++",
    ".cpp": "C++",
    ".cxx": "C++",
    ".hpp": "C++",
    ".hh": "C++",
    ".hxx": "C++",
    ".cs": "C#",
    ".fs": "F#",
    ".fsx": "F#",
    ".vb": "Visual Basic .NET",
    ".m": "Objective-C",
    ".mm": "Objective-C++",
    ".swift": "Swift",
    ".rb": "Ruby",
    ".erb": "HTML+ERB",
    ".php": "PHP",
    ".pl": "Perl",
    ".pm": "Perl",
    ".sh": "Shell",
    ".bash": "Shell",
    ".zsh": "Shell",
    ".ps1": "PowerShell",
    ".psm1": "PowerShell",
    ".bat": "Batchfile",
    ".cmd": "Batchfile",
    ".lua": "Lua",
    ".r": "R",
    ".jl": "Julia",
    ".dart": "Dart",
    ".ex": "Elixir",
    ".exs": "Elixir",
    ".erl": "Erlang",
    ".hrl": "Erlang",
    ".hs": "Haskell",
    ".clj": "Clojure",
    ".cljs": "Clojure",
    ".ml": "OCaml",
    ".html": "HTML",
    ".htm": "HTML",
    ".css": "CSS",
    ".scss": "SCSS",
    ".sass": "Sass",
    ".less": "Less",
    ".vue": "Vue",
    ".svelte": "Svelte",
    ".sql": "SQL",
    ".tf": "HCL",
    ".hcl": "HCL",
    ".proto": "Protocol Buffer",
    ".cmake": "CMake",
    ".mk": "Makefile",
    ".dockerfile": "Dockerfile",
    ".j2": "Jinja",
    ".jinja": "Jinja",
}
FILENAMES: dict[str, str] = {
    "Dockerfile": "Dockerfile",
    "Containerfile": "Dockerfile",
    "Makefile": "Makefile",
    "GNUmakefile": "Makefile",
    "makefile": "Makefile",
    "CMakeLists.txt": "CMake",
    "Jenkinsfile": "Groovy",
    "Rakefile": "Ruby",
    "Gemfile": "Ruby",
    "Vagrantfile": "Ruby",
    "BUILD.bazel": "Starlark",
    "WORKSPACE": "Starlark",
}
GENERATED = re.compile(
    r"(?:[.-]min\.(?:js|css)|\.bundle\.js|_pb2(?:_grpc)?\.pyi?|\.pb\.(?:go|cc|h)|\.pb\.gw\.go"
    r"|\.g\.cs|\.g\.i\.cs|\.designer\.cs|\.generated\.\w+|^zz_generated.*\.go)$",
    re.IGNORECASE,
)


def language_of(name: str) -> str | None:
    """The language of a file called `name`, or None when it does not count."""
    language = FILENAMES.get(name)
    if language is None and name.startswith(("Dockerfile.", "Jenkinsfile.")):
        language = FILENAMES[name.partition(".")[0]]
    if language is None:
        dot = name.rfind(".")
        if dot <= 0:
            return None
        language = EXTENSIONS.get(name[dot:].lower())
    if language is None or GENERATED.search(name):
        return None
    return language


def language_bytes(files: dict[str, int]) -> dict[str, int]:
    """Bytes per language over `files` (relative path -> size), largest first.

    Args:
        files: The repository's files, as `walk` lists them.

    Returns:
        Language name -> total bytes, ordered from the most bytes to the fewest.
    """
    totals: dict[str, int] = {}
    for relative, size in files.items():
        language = language_of(relative.rpartition("/")[2])
        if language is not None:
            totals[language] = totals.get(language, 0) + size
    return dict(sorted(totals.items(), key=lambda item: (-item[1], item[0])))
