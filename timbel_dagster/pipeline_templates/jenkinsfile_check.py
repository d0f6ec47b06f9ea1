"""Jenkinsfile validation: the real Groovy compiler for syntax, then declarative structure.

The compiler is Debian's `groovy` (2.4, the Groovy line Jenkins itself runs) on a JDK; one JVM
compiles a whole batch of files to the CONVERSION phase via `groovy/check.groovy`, since each
JVM start costs about a second. Without `groovy` the result says so in a warning and in its
`checker` field, and a much lighter tokeniser check (strings, comments, brackets) stands in.

The files are untrusted, and compiling one must not run its author's code: check.groovy runs
no global AST transformation (no @Grab download) and lists the uses of the annotations that
fetch or run code (`groovy_refused`: @Grab, @GrabResolver, @ASTTest, ...; the fallback finds
them in the tokens), each an error. The JVM gets a minimal environment (no tokens, no
database URL), an empty HOME and working directory (no ~/.groovy jars, grapes or startup
script, nothing from the caller's directory on the classpath) and Grape switched off. A file
over MAX_FILE_BYTES, or nested deeper than the parsers' stacks allow, is an error, not a crash.
"""

from __future__ import annotations

import importlib.resources
import json
import logging
import os
import re
import shlex
import shutil
import subprocess
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import NamedTuple

from timbel_dagster import child_env
from timbel_dagster.pipeline_templates.groovy_lexer import (
    Token,
    fallback_check,
    nesting_issue,
    tokenize,
)
from timbel_dagster.pipeline_templates.groovy_refused import REFUSED, refusal, refused_in_tokens
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
# Real Jenkinsfiles are a few KB (Jenkins cannot run a script whose body compiles to more
# than 64 KB of bytecode); the cap bounds the compiler's and the tokeniser's (linear) work.
MAX_FILE_BYTES = 128 * 1024
TOO_LARGE = issue(None, None, f"the file is over the limit of {MAX_FILE_BYTES:,} bytes")
Lexed = tuple[list[Token], list[Issue]]
# `[ \t]*`: a `\s*` after `^` under re.M crossed lines, rescanning blank lines from each one
_DECLARATIVE_HINT = re.compile(r"^[ \t]*pipeline\s*\{", re.MULTILINE)


class GroovyError(RuntimeError):
    """The installed groovy could not run (no JVM, a crash): not a verdict on the files."""


class Compiled(NamedTuple):
    """What the compiler said about one source: syntax errors, and the refused annotations
    (code the compiler would fetch or run) it found in a file that parsed."""

    syntax: list[Issue]
    refused: list[Issue]


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


def child_environment(java_home: Path | None, home: Path) -> dict[str, str]:
    """The whole environment of the groovy JVM: what the launcher and the JVM need, nothing
    of the caller's (tokens, database URLs, JAVA_TOOL_OPTIONS, CLASSPATH, GROOVY_*).

    Args:
        java_home: the JDK (None keeps the caller's JAVA_HOME, if any, for the launcher).
        home: an empty directory for HOME and the JVM's user.home, so that no ~/.groovy
            startup script, lib jar or grape cache is used.
    """
    fixed = {
        "HOME": str(home),
        "LANG": "C.UTF-8",
        # startGroovy passes JAVA_OPTS through `eval`, hence the quoting.
        "JAVA_OPTS": shlex.join(
            [
                "-Dgroovy.grape.enable=false",
                "-Dgroovy.grape.autoDownload=false",
                f"-Duser.home={home}",
                f"-Djava.io.tmpdir={home}",
            ]
        ),
    }
    if java_home is not None:
        fixed["JAVA_HOME"] = str(java_home)
    # PATH serves only the launcher's own lookups (sh, dirname, uname): not a secret, and a
    # fixed path would break a groovy installed elsewhere.
    environment = child_env.child_environment({"PATH", "JAVA_HOME"}, extra=fixed)
    environment.setdefault("PATH", os.defpath)
    return environment


def compile_sources(
    sources: Sequence[str], groovy: str, java_home: Path | None = None, timeout: float = 600
) -> list[Compiled]:
    """Compile every source text in ONE groovy JVM; what it found in each, in order.

    The JVM runs in an empty temporary directory (also its HOME) with `child_environment`.

    Raises:
        GroovyError: groovy did not run or did not report on every source.
    """
    request = json.dumps(
        {
            "refused": sorted(REFUSED),
            "sources": [{"id": i, "text": text} for i, text in enumerate(sources)],
        }
    )
    script = importlib.resources.files("timbel_dagster.pipeline_templates") / "groovy"
    with (
        importlib.resources.as_file(script / "check.groovy") as script_path,
        tempfile.TemporaryDirectory(prefix="timbel-groovy-") as scratch,
    ):
        _Launches.count += 1
        try:
            done = subprocess.run(
                [groovy, str(script_path)],
                input=request.encode("utf-8"),
                capture_output=True,
                env=child_environment(java_home, Path(scratch)),
                cwd=scratch,
                timeout=timeout,
                check=False,
            )
        except (OSError, subprocess.TimeoutExpired) as error:
            raise GroovyError(f"could not run {groovy}: {error}") from error
    reports: dict[int, Compiled] = {}
    for line in done.stdout.decode("utf-8", errors="replace").splitlines():
        if line.startswith("{"):
            report = json.loads(line)
            reports[report["id"]] = Compiled(
                [issue(e["line"], e["column"], e["message"]) for e in report["errors"]],
                [refusal(found) for found in report["refused"]],
            )
    missing = len(sources) - len(reports)
    if done.returncode != 0 or missing:
        stderr = done.stderr.decode("utf-8", errors="replace").strip().splitlines()
        raise GroovyError(
            f"{groovy} (JAVA_HOME={java_home}) exited {done.returncode} without checking "
            f"{missing} of {len(sources)} file(s): {' '.join(stderr[-3:]) or 'no error output'}"
        )
    log.debug("groovy compiled %d file(s) in one JVM", len(sources))
    return [reports[i] for i in range(len(sources))]


def _read(path: Path) -> str | None:
    """The file's text (newlines as read_text gives them), or None when it is over
    MAX_FILE_BYTES: never more than that is read."""
    try:
        with path.open("rb") as handle:
            data = handle.read(MAX_FILE_BYTES + 1)
        if len(data) > MAX_FILE_BYTES:
            return None
        return data.decode("utf-8").replace("\r\n", "\n").replace("\r", "\n")
    except FileNotFoundError:
        raise LookupError(f"{path}: no such file") from None
    except (OSError, UnicodeDecodeError) as error:
        raise ValueError(f"{path}: cannot be read as UTF-8 text: {error}") from error


def _explain_end_of_file(syntax: list[Issue], opened: list[Issue]) -> list[Issue]:
    """Groovy reports a string or comment left open as `unexpected char: 0xFFFF` at the end
    of the file; say where it was opened (`opened`: the tokeniser's unterminated) instead."""
    if not opened or not any("0xFFFF" in i["message"] for i in syntax):
        return syntax
    first = opened[0]
    note = f"{first['message']} (opened at line {first['line']}, column {first['column']})"
    return [
        {**i, "message": f"{i['message']}: {note}"} if "0xFFFF" in i["message"] else i
        for i in syntax
    ]


def _structure(
    path: Path, source: str, lexed: Lexed, syntax: list[Issue], checker: str
) -> ValidationResult:
    """The result for one file: its syntax errors, else its declarative structure's."""
    warnings = [] if checker == COMPILER else [GROOVY_MISSING]
    if not source.strip():
        empty = [issue(1, 1, "the file is empty")]
        return result(str(path), "jenkinsfile", checker, empty, warnings)
    if syntax:
        syntax = _explain_end_of_file(syntax, lexed[1])
        kind = "jenkinsfile" if _DECLARATIVE_HINT.search(source) else "jenkinsfile-scripted"
        warnings.append("declarative structure not checked: fix the syntax errors first")
        return result(str(path), kind, checker, syntax, warnings)
    tokens, unreadable = lexed
    too_deep = nesting_issue(tokens)
    if too_deep is not None:  # the compiler may accept it; the structure check would recurse
        return result(str(path), "jenkinsfile", checker, [too_deep], warnings)
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
    in the input order. A file over MAX_FILE_BYTES is invalid, neither read further nor
    compiled.

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
    read = {Path(p): _read(Path(p)) for p in paths}
    sources = {p: text for p, text in read.items() if text is not None}
    executable = groovy or find_groovy()
    checker, warnings = (COMPILER, []) if executable else (FALLBACK, [GROOVY_MISSING])
    checked: dict[Path, ValidationResult] = {
        p: result(str(p), "jenkinsfile", checker, [TOO_LARGE], warnings)
        for p, text in read.items()
        if text is None
    }
    if executable is None:
        log.warning("groovy not found: Jenkinsfiles get the lighter fallback check only")
        for p, s in sources.items():
            lexed = tokenize(s)
            found = _structure(p, s, lexed, fallback_check(lexed), FALLBACK)
            checked[p] = _refuse(found, refused_in_tokens(lexed[0]))
        return [checked[p] for p in read]
    home = java_home or find_java_home()
    compiled = compile_sources(list(sources.values()), executable, home) if sources else []
    for (p, s), found in zip(sources.items(), compiled, strict=True):
        checked[p] = _refuse(_structure(p, s, tokenize(s), found.syntax, COMPILER), found.refused)
    return [checked[p] for p in read]


def _refuse(checked: ValidationResult, refused: list[Issue]) -> ValidationResult:
    """Refused annotations are errors beside the structure's (the file parsed)."""
    if not refused:
        return checked
    errors = [*checked["errors"], *refused]
    return result(checked["path"], checked["kind"], checked["checker"], errors, checked["warnings"])
