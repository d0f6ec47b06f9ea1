"""Trivy, run as a subprocess that writes a JSON report (schema version 2) to a temporary file.

Every scan runs `trivy image|fs|sbom --format json --output FILE --exit-code 13 ... -- TARGET`.
The target comes from outside (an image reference in a job's config, a path): `--` ends
Trivy's options (cobra stops parsing flags there), so a target such as
`--server=http://attacker` can never be read as one, and an image reference is checked with
`parse_image` before anything runs.
Trivy exits with 1 on every kind of error, and with `--exit-code` only when it found
something, so a distinctive code tells the cases apart: 0 = no findings, 13 = findings (a
successful scan), anything else = the scanner failed. `--quiet` is never passed: it silences
Trivy's error messages too, and the stderr tail is what a `ScannerError` shows.

Offline mode (`offline`, TRIVY_OFFLINE) is for air-gapped hosts with a pre-filled cache:
`--skip-db-update` and `--skip-java-db-update` use the vulnerability databases already in
the cache, `--offline-scan` stops lookups of Java artifacts on Maven Central, and for
`image` and `fs` `--skip-check-update` uses the misconfiguration checks built into Trivy
(`trivy sbom` has no such flag and refuses it).
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
import shlex
import signal
import subprocess
import tempfile
import time
from pathlib import Path
from typing import TYPE_CHECKING

import dagster as dg

from timbel_dagster.child_env import CA_CERTIFICATES, PROXIES, child_environment
from timbel_dagster.records.image_ref import parse_image
from timbel_dagster.records.trivy import SEVERITIES
from timbel_dagster.resources.errors import SourceError
from timbel_dagster.resources.trivy_report import parse_report
from timbel_dagster.settings import get_settings

if TYPE_CHECKING:
    from timbel_dagster.records.trivy import ScanReport
    from timbel_dagster.settings import Settings

SYSTEM = "trivy"
FINDINGS_EXIT_CODE = 13
SUBCOMMANDS = ("image", "fs", "sbom")
STDERR_TAIL_CHARS = 1500
_OFFLINE_FLAGS = ("--skip-db-update", "--skip-java-db-update", "--offline-scan")
_log = logging.getLogger(__name__)
# What Trivy may see of Timbel's environment: its own TRIVY_* options and what a Go program
# needs to reach registries (proxies, CA certificates, Docker's credential file). Nothing
# else: the scanner has no business with Jenkins or GitLab tokens or the database URL.
_PASSED_VARIABLES = frozenset(
    {
        "PATH",
        "HOME",
        "TMPDIR",
        "LANG",
        "LC_ALL",
        "XDG_CACHE_HOME",
        "DOCKER_CONFIG",
        "DOCKER_HOST",
        *CA_CERTIFICATES,
        *PROXIES,
    }
)


def scanner_environment() -> dict[str, str]:
    """The environment Trivy runs with: this process's `_PASSED_VARIABLES` and TRIVY_*."""
    return child_environment(_PASSED_VARIABLES, prefixes=("TRIVY_",))


class ScannerError(SourceError):
    """Trivy did not produce a report: it could not be started, failed, timed out, or wrote
    something that is not a schema-2 JSON report.

    Attributes:
        command: the command line run.
        exit_code: Trivy's exit code, or None when it did not exit by itself.
        stderr: the end of what it wrote to stderr.
    """

    def __init__(
        self,
        command: list[str],
        target: str,
        detail: str,
        *,
        exit_code: int | None = None,
        stderr: str = "",
    ) -> None:
        self.command, self.exit_code, self.stderr = command, exit_code, stderr
        subcommand = command[1] if len(command) > 1 else ""
        super().__init__(SYSTEM, f"{subcommand} {target}".strip(), detail)


def _tail(stderr: bytes) -> str:
    """The end of stderr on one line (the CLI shows errors as one line)."""
    text = stderr.decode("utf-8", "replace").strip()
    if len(text) > STDERR_TAIL_CHARS:
        text = "..." + text[-STDERR_TAIL_CHARS:]
    return " | ".join(" ".join(line.split()) for line in text.splitlines() if line.strip())


def check_image_reference(ref: str) -> str:
    """`ref` when it is an image reference Trivy may be given.

    Raises:
        ValueError: not an image reference (one starting with '-' included); the message
            names it.
    """
    if ref.startswith("-"):  # checked first: the reason is what matters here
        raise ValueError(f"{ref!r} is not an image reference (it starts with '-')")
    if ref != ref.strip():
        raise ValueError(f"{ref!r} is not an image reference (blank at either end)")
    parse_image(ref)
    return ref


def _kill(process: subprocess.Popen[bytes]) -> None:
    """Kill the scanner and anything it started (it leads its own process group)."""
    with contextlib.suppress(ProcessLookupError):  # already gone
        os.killpg(process.pid, signal.SIGKILL)
    process.communicate()


class TrivyResource(dg.ConfigurableResource):
    """The Trivy scanner. Unset fields come from TRIVY_BINARY, TRIVY_TIMEOUT_SECONDS,
    TRIVY_CACHE_DIR and TRIVY_OFFLINE when a scan first needs them.

    Attributes:
        executable: the `trivy` command or its path.
        timeout_seconds: a scan taking longer is killed (also passed as `--timeout`).
        cache_dir: Trivy's cache (databases, layers); Trivy's default when unset.
        offline: scan with what is in the cache, without network (see the module doc).
        severities: report only these (CRITICAL, HIGH, MEDIUM, LOW, UNKNOWN); all when empty.
        extra_args: more Trivy flags, put before `--` and the target.
    """

    executable: str | None = None
    timeout_seconds: float | None = None
    cache_dir: str | None = None
    offline: bool | None = None
    severities: list[str] = []
    extra_args: list[str] = []

    @classmethod
    def from_settings(cls, settings: Settings) -> TrivyResource:
        """A resource configured from `settings` (what the CLI uses)."""
        return cls(
            executable=settings.trivy_binary,
            timeout_seconds=settings.trivy_timeout_seconds,
            cache_dir=str(settings.trivy_cache_dir) if settings.trivy_cache_dir else None,
            offline=settings.trivy_offline,
        )

    def _resolved(self) -> TrivyResource:
        if None not in (self.executable, self.timeout_seconds, self.cache_dir, self.offline):
            return self
        defaults = TrivyResource.from_settings(get_settings())
        return TrivyResource(
            executable=self.executable or defaults.executable,
            timeout_seconds=self.timeout_seconds or defaults.timeout_seconds,
            cache_dir=self.cache_dir or defaults.cache_dir,
            offline=defaults.offline if self.offline is None else self.offline,
            severities=self.severities,
            extra_args=self.extra_args,
        )

    def command(self, subcommand: str, target: str, output: Path) -> list[str]:
        """The command line of one scan writing its report to `output`."""
        if subcommand not in SUBCOMMANDS:
            raise ValueError(f"Trivy subcommand must be one of {SUBCOMMANDS}, not {subcommand!r}")
        if subcommand == "image":
            check_image_reference(target)
        unknown = [s for s in self.severities if s.upper() not in SEVERITIES]
        if unknown:
            raise ValueError(
                f"TrivyResource.severities: {', '.join(map(repr, unknown))} not among "
                f"{', '.join(SEVERITIES)}"
            )
        resolved = self._resolved()
        assert resolved.executable and resolved.timeout_seconds
        command = [resolved.executable, subcommand, "--format", "json", "--output", str(output)]
        command += ["--exit-code", str(FINDINGS_EXIT_CODE), "--no-progress"]
        command += ["--timeout", f"{max(1, math.ceil(resolved.timeout_seconds))}s"]
        if resolved.cache_dir:
            command += ["--cache-dir", resolved.cache_dir]
        if self.severities:
            command += ["--severity", ",".join(s.upper() for s in self.severities)]
        if resolved.offline:
            command += [*_OFFLINE_FLAGS, *(["--skip-check-update"] if subcommand != "sbom" else [])]
        return [*command, *self.extra_args, "--", target]

    def scan_image(self, ref: str) -> ScanReport:
        """Scan a container image (`host/repo:tag`, `host/repo@sha256:...`)."""
        return self._scan("image", ref)

    def scan_fs(self, path: str | Path) -> ScanReport:
        """Scan a directory or file: lock files, IaC files, secrets."""
        return self._scan("fs", str(path))

    def scan_sbom(self, path: str | Path) -> ScanReport:
        """Scan the packages of a CycloneDX or SPDX SBOM file."""
        return self._scan("sbom", str(path))

    def _scan(self, subcommand: str, target: str) -> ScanReport:
        """Run one scan and return its parsed report, or raise `ScannerError`."""
        timeout = self._resolved().timeout_seconds or 0.0
        with tempfile.TemporaryDirectory(prefix="timbel-trivy-") as workdir:
            output = Path(workdir) / "report.json"
            command = self.command(subcommand, target, output)
            code, stderr = self._run(command, target, timeout)
            if code not in (0, FINDINGS_EXIT_CODE):
                how = f"was killed by signal {-code}" if code < 0 else f"exited with code {code}"
                raise ScannerError(
                    command,
                    target,
                    f"`{shlex.join(command)}` {how}: {_tail(stderr) or 'nothing on stderr'}",
                    exit_code=code,
                    stderr=_tail(stderr),
                )
            data = output.read_bytes() if output.exists() else b""
        if not data.strip():
            raise ScannerError(
                command, target, f"exited with code {code} but wrote no report", exit_code=code
            )
        try:
            report = parse_report(data, f"{SYSTEM} {subcommand} output")
        except ValueError as error:
            raise ScannerError(
                command, target, f"no schema-2 JSON report: {error}", exit_code=code
            ) from None
        found = any(r.vulnerabilities or r.secrets for r in report.results) or any(
            m.failed for m in report.misconfigurations
        )
        if found != (code == FINDINGS_EXIT_CODE):
            _log.warning(
                "trivy %s %s: exit code %s but findings=%s", subcommand, target, code, found
            )
        return report

    @staticmethod
    def _run(command: list[str], target: str, timeout: float) -> tuple[int, bytes]:
        started = time.monotonic()
        try:
            process = subprocess.Popen(
                command,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.PIPE,
                env=scanner_environment(),
                start_new_session=True,  # its own process group, so a timeout kills it all
            )
        except FileNotFoundError:
            raise ScannerError(
                command,
                target,
                f"executable {command[0]!r} not found: install Trivy or set TRIVY_BINARY",
            ) from None
        except PermissionError:
            raise ScannerError(
                command, target, f"executable {command[0]!r} cannot be run (permission denied)"
            ) from None
        try:
            _, stderr = process.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            _kill(process)
            raise ScannerError(
                command, target, f"timed out after {timeout:g} s; the scanner was killed"
            ) from None
        _log.info(
            "trivy %s %s: exit code %s in %.1fs",
            command[1],
            target,
            process.returncode,
            time.monotonic() - started,
        )
        return process.returncode, stderr
