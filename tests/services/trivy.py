"""Trivy for tests: the real binary when it is on PATH, else the stand-in
(`tests/fakes/trivy_standin.py`) behind a launcher that runs it with this venv's Python.

Failure modes (a crash, a hang, output that is not JSON) and replays of recorded image
reports always use the stand-in: real Trivy cannot be made to fail on demand, and scanning
the recorded images would need their registries.

Use the fixtures by importing them into a test module:
`from tests.services.trivy import trivy_fixture, trivy_standin_fixture  # noqa: F401`.
"""

from __future__ import annotations

import json
import shlex
import shutil
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from timbel_dagster.resources.trivy import TrivyResource

STANDIN = Path(__file__).resolve().parents[1] / "fakes" / "trivy_standin.py"
FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "trivy"


@dataclass
class TrivyService:
    """A Trivy executable for tests and, for the stand-in, what it answers per target."""

    executable: str
    workdir: Path
    real: bool = False
    targets: dict[str, dict[str, Any]] = field(default_factory=dict)

    @property
    def map_file(self) -> Path:
        return self.workdir / "targets.json"

    @property
    def log_file(self) -> Path:
        return self.workdir / "calls.jsonl"

    def _set(self, target: str, spec: dict[str, Any]) -> None:
        if self.real:
            raise RuntimeError("the real Trivy scans what is there; only the stand-in replays")
        self.targets[str(target)] = spec
        self.map_file.write_text(json.dumps(self.targets))

    def replay(self, target: str | Path, fixture: str) -> None:
        """Answer scans of `target` with the recorded report `tests/fixtures/trivy/<fixture>`."""
        self._set(str(target), {"report": str(FIXTURES / fixture)})

    def crash(self, target: str, message: str) -> None:
        self._set(target, {"crash": message})

    def hang(self, target: str) -> None:
        self._set(target, {"hang": True})

    def garbage(self, target: str, text: str) -> None:
        self._set(target, {"output": text})

    def _log(self) -> list[dict[str, Any]]:
        if not self.log_file.exists():
            return []
        return [json.loads(line) for line in self.log_file.read_text().splitlines()]

    def calls(self) -> list[list[str]]:
        """The argument lists the stand-in was run with, in order."""
        return [entry["argv"] for entry in self._log()]

    def pids(self) -> list[int]:
        """The process ids of those runs."""
        return [entry["pid"] for entry in self._log()]

    def resource(self, **changes: Any) -> TrivyResource:
        """A `TrivyResource` on this executable, independent of the environment."""
        # The real Trivy keeps its databases in its usual cache rather than downloading them
        # again into every test's directory.
        cache = Path.home() / ".cache" / "trivy" if self.real else self.workdir / "cache"
        fields: dict[str, Any] = {
            "executable": self.executable,
            "timeout_seconds": 300.0 if self.real else 60.0,
            "cache_dir": str(cache),
            "offline": False,
        }
        return TrivyResource(**(fields | changes))


def standin(workdir: Path) -> TrivyService:
    """The stand-in behind an executable `trivy` launcher in `workdir/bin`."""
    bin_dir = workdir / "bin"
    bin_dir.mkdir(parents=True, exist_ok=True)
    service = TrivyService(executable=str(bin_dir / "trivy"), workdir=workdir)
    service.map_file.write_text("{}")
    launcher = Path(service.executable)
    launcher.write_text(
        "#!/bin/sh\n"
        f"TRIVY_STANDIN_MAP={shlex.quote(str(service.map_file))} "
        f"TRIVY_STANDIN_LOG={shlex.quote(str(service.log_file))} "
        f'exec {shlex.quote(sys.executable)} {shlex.quote(str(STANDIN))} "$@"\n'
    )
    launcher.chmod(0o755)
    return service


@pytest.fixture(name="trivy_standin")
def trivy_standin_fixture(tmp_path: Path) -> TrivyService:
    """Always the stand-in (replays, crashes, hangs, non-JSON output)."""
    return standin(tmp_path / "trivy")


@pytest.fixture(name="trivy")
def trivy_fixture(tmp_path: Path) -> TrivyService:
    """The real `trivy` when installed, else the stand-in."""
    real = shutil.which("trivy")
    if real:
        workdir = tmp_path / "trivy"
        workdir.mkdir()
        return TrivyService(executable=real, workdir=workdir, real=True)
    return standin(tmp_path / "trivy")
