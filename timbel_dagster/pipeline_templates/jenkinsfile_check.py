"""Jenkinsfile validation: the real Groovy compiler for syntax, then declarative structure.

The compiler is Debian's `groovy` (2.4, the Groovy line Jenkins itself runs) on a JDK; one JVM
compiles a whole batch of files to the CONVERSION phase via `groovy/check.groovy`, since each
JVM start costs about a second. Without `groovy` the result says so in a warning and in its
`checker` field, and a much lighter tokeniser check (strings, comments, brackets) stands in.
"""

from __future__ import annotations

import importlib.resources
import json
import logging
import os
import re
import shutil
import subprocess
from collections.abc import Sequence
from pathlib import Path

from timbel_dagster.pipeline_templates.groovy_lexer import fallback_check, tokenize
from timbel_dagster.pipeline_templates.jenkinsfile_structure import declarative_issues
from timbel_dagster.pipeline_templates.results import Issue, ValidationResult, issue, result

log = logging.getLogger(__name__)

JVM_ROOT = Path("/usr/lib/jvm")
COMPILER = "groovy-compiler"
FALLBACK = "fallback-tokeniser"
GROOVY_MISSING = (
    "groovy is not installed (no `groovy` on PATH): the Groovy syntax was NOT compiled; only "
    "the lighter fallback check ran (strings, comments and brackets balance, declarative "
    "structure). Install Debian's `groovy` package for the real compiler check."
)
_DECLARATIVE_HINT = re.compile(r"^\s*pipeline\s*\{", re.MULTILINE)


class GroovyError(RuntimeError):
    """The installed groovy could not run (no JVM, a crash): not a verdict on the files."""


class _Launches:
    count = 0


def jvm_launches() -> int:
    """How many groovy JVMs this process has started (tests assert batching with it)."""
    return _Launches.count


def find_groovy() -> str | None:
    """The `groovy` executable on PATH, or None."""
    return shutil.which("groovy")


def find_java_home(jvm_root: Path = JVM_ROOT) -> Path | None:
    """Debian's JDK 17 (`/usr/lib/jvm/java-17-openjdk-*`), else another Debian OpenJDK.

    Debian's groovy script needs JAVA_HOME when `default-java` is not installed, and Groovy
    2.4 is built for the JDKs of its time (on JDK 25 it already warns about removed
    internals), so the choice is made here, not left to whatever `java` is first on PATH.
    """
    for pattern in ("java-17-openjdk-*", "java-*-openjdk-*"):
        for home in sorted(jvm_root.glob(pattern)):
            if (home / "bin" / "java").exists():
                return home
    return None


def compile_sources(
    sources: Sequence[str], groovy: str, java_home: Path | None = None, timeout: float = 600
) -> list[list[Issue]]:
    """Compile every source text in ONE groovy JVM; the errors of each, in order.

    Raises:
        GroovyError: groovy did not run or did not report on every source.
    """
    request = json.dumps([{"id": i, "text": text} for i, text in enumerate(sources)])
    environment = dict(os.environ)  # passed through to the child; JAVA_HOME pinned below
    if java_home is not None:
        environment["JAVA_HOME"] = str(java_home)
    script = importlib.resources.files("timbel_dagster.pipeline_templates") / "groovy"
    with importlib.resources.as_file(script / "check.groovy") as script_path:
        _Launches.count += 1
        try:
            done = subprocess.run(
                [groovy, str(script_path)],
                input=request.encode("utf-8"),
                capture_output=True,
                env=environment,
                timeout=timeout,
                check=False,
            )
        except (OSError, subprocess.TimeoutExpired) as error:
            raise GroovyError(f"could not run {groovy}: {error}") from error
    reports: dict[int, list[Issue]] = {}
    for line in done.stdout.decode("utf-8", errors="replace").splitlines():
        if line.startswith("{"):
            report = json.loads(line)
            reports[report["id"]] = [
                issue(e["line"], e["column"], e["message"]) for e in report["errors"]
            ]
    missing = len(sources) - len(reports)
    if done.returncode != 0 or missing:
        stderr = done.stderr.decode("utf-8", errors="replace").strip().splitlines()
        raise GroovyError(
            f"{groovy} (JAVA_HOME={java_home}) exited {done.returncode} without checking "
            f"{missing} of {len(sources)} file(s): {' '.join(stderr[-3:]) or 'no error output'}"
        )
    log.debug("groovy compiled %d file(s) in one JVM", len(sources))
    return [reports[i] for i in range(len(sources))]


def _read(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise LookupError(f"{path}: no such file") from None
    except (OSError, UnicodeDecodeError) as error:
        raise ValueError(f"{path}: cannot be read as UTF-8 text: {error}") from error


def _explain_end_of_file(source: str, syntax: list[Issue]) -> list[Issue]:
    """Groovy reports a string or comment left open as `unexpected char: 0xFFFF` at the end
    of the file; say where it was opened instead."""
    opened = tokenize(source)[1]
    if not opened or not any("0xFFFF" in i["message"] for i in syntax):
        return syntax
    first = opened[0]
    note = f"{first['message']} (opened at line {first['line']}, column {first['column']})"
    return [
        {**i, "message": f"{i['message']}: {note}"} if "0xFFFF" in i["message"] else i
        for i in syntax
    ]


def _structure(path: Path, source: str, syntax: list[Issue], checker: str) -> ValidationResult:
    warnings = [] if checker == COMPILER else [GROOVY_MISSING]
    if not source.strip():
        empty = [issue(1, 1, "the file is empty")]
        return result(str(path), "jenkinsfile", checker, empty, warnings)
    if syntax:
        syntax = _explain_end_of_file(source, syntax)
        kind = "jenkinsfile" if _DECLARATIVE_HINT.search(source) else "jenkinsfile-scripted"
        warnings.append("declarative structure not checked: fix the syntax errors first")
        return result(str(path), kind, checker, syntax, warnings)
    tokens, unreadable = tokenize(source)
    if unreadable:  # the compiler accepted what the light tokeniser cannot follow
        warnings.append(f"declarative structure not checked: {unreadable[0]['message']}")
        return result(str(path), "jenkinsfile", checker, [], warnings)
    declarative, problems = declarative_issues(tokens)
    if not declarative:
        warnings.append("scripted pipeline (no top-level pipeline { }): declarative checks skipped")
        return result(str(path), "jenkinsfile-scripted", checker, [], warnings)
    return result(str(path), "jenkinsfile", checker, problems, warnings)


def check_jenkinsfiles(
    paths: Sequence[Path], groovy: str | None = None, java_home: Path | None = None
) -> list[ValidationResult]:
    """Validate Jenkinsfiles, all compiled by one groovy JVM; one result per distinct path,
    in the input order.

    Args:
        paths: the files.
        groovy: the groovy executable; None looks it up on PATH (falling back to the labelled
            light check when there is none).
        java_home: the JDK for groovy; None picks Debian's JDK 17.

    Raises:
        LookupError: a file does not exist.
        ValueError: a file is not UTF-8 text.
        GroovyError: groovy is installed but could not run.
    """
    sources = {Path(p): _read(Path(p)) for p in paths}
    executable = groovy or find_groovy()
    if executable is None:
        log.warning("groovy not found: Jenkinsfiles get the lighter fallback check only")
        return [_structure(p, s, fallback_check(s), FALLBACK) for p, s in sources.items()]
    home = java_home or find_java_home()
    compiled = compile_sources(list(sources.values()), executable, home) if sources else []
    return [
        _structure(p, s, errors, COMPILER)
        for (p, s), errors in zip(sources.items(), compiled, strict=True)
    ]
