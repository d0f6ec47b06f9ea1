"""`make dev` listens where the make command line says (PORT, HOST), on 127.0.0.1:3000 by
default; a bad value stops it in one line. Checked with `make -n`, which runs nothing."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.skipif(shutil.which("make") is None, reason="make is not installed")


def make_n(*args: str, **env: str) -> subprocess.CompletedProcess:
    environment = {k: v for k, v in os.environ.items() if k not in ("PORT", "HOST")} | env
    return subprocess.run(
        ["make", "--no-print-directory", "-n", "dev", *args],
        cwd=ROOT,
        env=environment,
        capture_output=True,
        text=True,
        timeout=60,
    )


def _dagster_dev(completed: subprocess.CompletedProcess) -> str:
    assert completed.returncode == 0, completed.stderr
    [line] = [line for line in completed.stdout.splitlines() if "dagster dev" in line]
    return line.strip()


def test_dev_defaults_to_localhost_3000() -> None:
    line = _dagster_dev(make_n())
    assert line.endswith("dagster dev -w workspace.yaml -h 127.0.0.1 -p 3000")


def test_dev_port_and_host_from_the_command_line() -> None:
    line = _dagster_dev(make_n("PORT=3001", "HOST=0.0.0.0"))
    assert line.endswith("dagster dev -w workspace.yaml -h 0.0.0.0 -p 3001")


def test_an_exported_port_or_host_does_not_move_the_ui() -> None:
    line = _dagster_dev(make_n(PORT="8080", HOST="0.0.0.0"))
    assert line.endswith("-h 127.0.0.1 -p 3000")


@pytest.mark.parametrize(
    ("arg", "message"),
    [
        ("PORT=30a1", "make dev: PORT must be a port number, not '30a1'"),
        ("PORT=", "make dev: PORT is empty; give a port number, e.g. PORT=3001"),
        ("HOST=a b", "make dev: HOST must be one address, not 'a b'"),
    ],
)
def test_a_bad_port_or_host_is_one_line(arg: str, message: str) -> None:
    completed = make_n(arg)
    assert completed.returncode == 2
    [line] = completed.stderr.splitlines()
    assert line.endswith(f"*** {message}.  Stop.")
    assert "dagster dev" not in completed.stdout
