"""`TrivyResource` against the Trivy stand-in (and the real Trivy for the file scans when it is
installed): exit code 13 for findings, 0 for none, anything else a `ScannerError`; crashes,
hangs and output that is not a report."""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path

import pytest

from tests.services.trivy import FIXTURES, TrivyService, trivy_fixture, trivy_standin_fixture  # noqa: F401
from timbel_dagster.resources.trivy import FINDINGS_EXIT_CODE, ScannerError, TrivyResource
from timbel_dagster.settings import load_settings

IMAGE = "registry.example/shop/api@sha256:" + "5e" * 32
CARGO_LOCK = """\
version = 3

[[package]]
name = "ammonia"
version = "1.9.0"
source = "registry+https://github.com/rust-lang/crates.io-index"
checksum = "384d704f242a0a9faf793fff775a0be6ab9aa27edabffa097331d73779142520"
"""
CYCLONEDX = {
    "bomFormat": "CycloneDX",
    "specVersion": "1.5",
    "serialNumber": "urn:uuid:3e671687-395b-41f5-a30f-a58921a69b79",
    "version": 1,
    "metadata": {"component": {"type": "application", "name": "shop-api", "bom-ref": "app"}},
    "components": [
        {
            "type": "library",
            "name": "ammonia",
            "version": "1.9.0",
            "purl": "pkg:cargo/ammonia@1.9.0",
            "bom-ref": "pkg:cargo/ammonia@1.9.0",
        }
    ],
}


def _exit_codes(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage().split("exit code ")[1].split()[0] for r in caplog.records
            if "exit code" in r.getMessage()]  # fmt: skip


def test_findings_are_exit_code_13_and_a_report(
    trivy_standin: TrivyService, caplog: pytest.LogCaptureFixture
) -> None:
    trivy_standin.replay(IMAGE, "alpine-39-high-critical.json")
    caplog.set_level(logging.INFO, logger="timbel_dagster.resources.trivy")
    report = trivy_standin.resource().scan_image(IMAGE)
    assert _exit_codes(caplog) == [str(FINDINGS_EXIT_CODE)]
    assert report.artifact_name == IMAGE and report.artifact_digest == "sha256:" + "5e" * 32
    assert [v.pkg_name for v in report.vulnerabilities] == ["musl", "musl-utils"]
    [argv] = trivy_standin.calls()
    assert argv[:3] == ["image", "--format", "json"] and argv[-2:] == ["--", IMAGE]
    assert argv[argv.index("--exit-code") + 1] == "13"
    assert argv[argv.index("--cache-dir") + 1] == str(trivy_standin.workdir / "cache")
    assert "--quiet" not in argv  # it would hide Trivy's error messages


def test_no_findings_is_exit_code_0(
    trivy_standin: TrivyService, caplog: pytest.LogCaptureFixture
) -> None:
    trivy_standin.replay("alpine:3.10", "alpine-310-registry.json")  # four MEDIUM ones
    caplog.set_level(logging.INFO, logger="timbel_dagster.resources.trivy")
    report = trivy_standin.resource(severities=["critical", "HIGH"]).scan_image("alpine:3.10")
    assert report.vulnerabilities == () and len(report.results) == 1
    assert _exit_codes(caplog) == ["0"]
    [argv] = trivy_standin.calls()
    assert argv[argv.index("--severity") + 1] == "CRITICAL,HIGH"


@pytest.mark.parametrize(
    ("subcommand", "flags"),
    [
        ("image", ["--skip-db-update", "--skip-java-db-update", "--offline-scan",
                   "--skip-check-update"]),
        ("sbom", ["--skip-db-update", "--skip-java-db-update", "--offline-scan"]),
    ],
)  # fmt: skip
def test_offline_flags(
    trivy_standin: TrivyService, tmp_path: Path, subcommand: str, flags: list[str]
) -> None:
    target = str(tmp_path / "sbom.cdx.json") if subcommand == "sbom" else IMAGE
    Path(tmp_path / "sbom.cdx.json").write_text(json.dumps(CYCLONEDX))
    trivy_standin.replay(target, "test-repo.json")
    resource = trivy_standin.resource(offline=True, extra_args=["--scanners", "vuln"])
    report = getattr(resource, f"scan_{subcommand}")(target)
    assert report.vulnerabilities
    [argv] = trivy_standin.calls()
    assert [a for a in argv if a.startswith("--skip") or a == "--offline-scan"] == flags
    assert argv[-4:] == ["--scanners", "vuln", "--", target]


def test_a_flag_trivy_refuses_is_a_scanner_error(
    trivy_standin: TrivyService, tmp_path: Path
) -> None:
    sbom = tmp_path / "sbom.cdx.json"
    sbom.write_text(json.dumps(CYCLONEDX))
    trivy_standin.replay(str(sbom), "test-repo.json")
    resource = trivy_standin.resource(extra_args=["--skip-check-update"])
    with pytest.raises(ScannerError, match=r"exited with code 1: Error: unknown flag"):
        resource.scan_sbom(sbom)


def test_a_crash_names_the_command_exit_code_and_stderr(trivy_standin: TrivyService) -> None:
    trivy_standin.crash(IMAGE, "init error: DB error: failed to download vulnerability DB")
    with pytest.raises(ScannerError) as raised:
        trivy_standin.resource().scan_image(IMAGE)
    error = raised.value
    assert error.exit_code == 1 and error.command[-1] == IMAGE
    message = str(error)
    assert message.startswith(f"trivy image {IMAGE}: `{trivy_standin.executable} image ")
    assert "exited with code 1: " in message
    assert message.endswith("FATAL Fatal error init error: DB error: failed to download "
                            "vulnerability DB")  # fmt: skip
    assert "\n" not in message


def test_quiet_trivy_says_nothing_on_stderr(trivy_standin: TrivyService) -> None:
    trivy_standin.crash(IMAGE, "boom")
    with pytest.raises(ScannerError, match=r"exited with code 1: nothing on stderr$"):
        trivy_standin.resource(extra_args=["--quiet"]).scan_image(IMAGE)


def test_an_unknown_image_fails(trivy_standin: TrivyService) -> None:
    with pytest.raises(ScannerError, match=r"unable to find the specified image"):
        trivy_standin.resource().scan_image("registry.example/nothing:1")


def test_a_hanging_scanner_is_killed_at_the_timeout(trivy_standin: TrivyService) -> None:
    trivy_standin.hang(IMAGE)
    with pytest.raises(ScannerError) as raised:
        trivy_standin.resource(timeout_seconds=0.5).scan_image(IMAGE)
    assert str(raised.value) == (
        f"trivy image {IMAGE}: timed out after 0.5 s; the scanner was killed"
    )
    [pid] = trivy_standin.pids()
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)  # killed and reaped
    [argv] = trivy_standin.calls()
    assert argv[argv.index("--timeout") + 1] == "1s"


@pytest.mark.parametrize(
    ("output", "expected"),
    [
        ("Total: 2 (HIGH: 0, CRITICAL: 2)\n", "not JSON"),
        ((FIXTURES / "legacy-array-distroless-base.json").read_text(), "before 0.20"),
        ("", "exited with code 0 but wrote no report"),
    ],
)
def test_output_that_is_not_a_report(
    trivy_standin: TrivyService, output: str, expected: str
) -> None:
    trivy_standin.garbage(IMAGE, output)
    with pytest.raises(ScannerError, match=expected) as raised:
        trivy_standin.resource().scan_image(IMAGE)
    assert raised.value.exit_code == 0


def test_a_missing_executable_is_named(tmp_path: Path) -> None:
    resource = TrivyResource(
        executable=str(tmp_path / "no-trivy"), timeout_seconds=5, cache_dir="c", offline=False
    )
    with pytest.raises(ScannerError) as raised:
        resource.scan_image(IMAGE)
    assert str(raised.value) == (
        f"trivy image {IMAGE}: executable '{tmp_path / 'no-trivy'}' not found: install Trivy "
        "or set TRIVY_BINARY"
    )


def test_bad_configuration_is_refused(trivy_standin: TrivyService) -> None:
    with pytest.raises(ValueError, match=r"'SEVERE' not among CRITICAL"):
        trivy_standin.resource(severities=["SEVERE"]).scan_image(IMAGE)
    with pytest.raises(ValueError, match=r"subcommand must be one of"):
        trivy_standin.resource().command("k8s", "cluster", Path("out.json"))
    assert trivy_standin.calls() == []


@pytest.mark.timeout(10)
@pytest.mark.parametrize(
    ("ref", "why"),
    [
        ("--server=http://127.0.0.1:9", "it starts with '-'"),  # client mode: images leave
        ("--config=/etc/passwd", "it starts with '-'"),
        ("-q", "it starts with '-'"),
        (" alpine:3.10", "blank at either end"),
        ("alpine:3.10 --server=x", "'3.10 --server=x' is not a tag"),
    ],
)
def test_an_option_as_image_reference_is_refused_before_trivy_runs(
    trivy_standin: TrivyService, ref: str, why: str
) -> None:
    """Issue #13, finding 8: the reference used to be the last argument with no `--` before
    it, so Trivy read `--server=URL` as an option."""
    trivy_standin.replay(ref, "alpine-310-registry.json")
    with pytest.raises(ValueError) as raised:
        trivy_standin.resource().scan_image(ref)
    assert str(raised.value) == f"{ref!r} is not an image reference ({why})"
    assert trivy_standin.calls() == []  # nothing started


def test_double_dash_keeps_a_path_that_looks_like_an_option_a_path(
    trivy_standin: TrivyService,
) -> None:
    with pytest.raises(ScannerError, match=r"lstat --config=/etc/passwd: no such file"):
        trivy_standin.resource().scan_fs("--config=/etc/passwd")
    [argv] = trivy_standin.calls()
    assert argv[-2:] == ["--", "--config=/etc/passwd"]


def test_trivy_sees_none_of_timbels_secrets(
    trivy_standin: TrivyService, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The scanner gets its own TRIVY_* options and what reaching a registry needs, never the
    CI tokens or the database URL of the process that runs it."""
    for name in ("JENKINS_TOKEN", "GITLAB_TOKEN", "TIMBEL_DATABASE_URL", "TIMBEL_SECRET_KEY"):
        monkeypatch.setenv(
            name, "postgresql://u:secret@db.example/w" if "URL" in name else "s3cret"
        )
    allowed = {
        "HTTPS_PROXY": "http://proxy.example:3128",
        "no_proxy": "localhost",
        "SSL_CERT_FILE": "/etc/ssl/in-house.pem",
        "DOCKER_CONFIG": "/etc/docker-credentials",
        "TRIVY_INSECURE": "false",  # Trivy's own options pass by their prefix
    }
    for name, value in allowed.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("GIT_DIR", "/elsewhere/.git")  # not a secret, but not Trivy's either
    trivy_standin.replay(IMAGE, "alpine-39-high-critical.json")
    TrivyResource(executable=trivy_standin.executable, timeout_seconds=30).scan_image(IMAGE)
    (call,) = [json.loads(line) for line in trivy_standin.log_file.read_text().splitlines()]
    seen = set(call["env"])
    assert not seen & {"JENKINS_TOKEN", "GITLAB_TOKEN", "TIMBEL_DATABASE_URL", "TIMBEL_SECRET_KEY"}
    assert "GIT_DIR" not in seen
    assert {"PATH", *allowed, "TRIVY_STANDIN_MAP", "TRIVY_STANDIN_LOG"} <= seen


def test_settings_configure_the_resource(tmp_path: Path) -> None:
    settings = load_settings(
        trivy_binary="/opt/trivy/bin/trivy",
        trivy_cache_dir=tmp_path,
        trivy_timeout_seconds=90,
        trivy_offline=True,
    )
    command = TrivyResource.from_settings(settings).command("fs", "/src", Path("/tmp/r.json"))
    assert command[0] == "/opt/trivy/bin/trivy"
    assert command[command.index("--timeout") + 1] == "90s"
    assert command[command.index("--cache-dir") + 1] == str(tmp_path)
    assert "--offline-scan" in command and command[-1] == "/src"


def test_filesystem_and_sbom_scans_find_the_locked_package(
    trivy: TrivyService, tmp_path: Path
) -> None:
    """With the real Trivy (when installed) or the stand-in replaying Trivy's own report of
    a repository that locks ammonia 1.9.0."""
    source = tmp_path / "src"
    source.mkdir()
    (source / "Cargo.lock").write_text(CARGO_LOCK)
    sbom = tmp_path / "shop-api.cdx.json"
    sbom.write_text(json.dumps(CYCLONEDX))
    if not trivy.real:
        trivy.replay(source, "test-repo.json")
        trivy.replay(sbom, "test-repo.json")
    resource = trivy.resource()
    for report, kind in (
        (resource.scan_fs(source), "filesystem"),
        (resource.scan_sbom(sbom), "cyclonedx"),
    ):
        assert report.artifact_type == kind
        found = {(v.pkg_name, v.vulnerability_id) for v in report.vulnerabilities}
        assert ("ammonia", "CVE-2019-15542") in found
