"""The cross-worker pieces behind `demo_run`: one shared directory per test run, a lock that
another process cannot take while it is held, and results written whole."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tests.once_per_run import exclusive, shared_directory, write_atomically

# Tries the lock without waiting, in another process: exit 0 if it got it, 1 if it is held.
TRY_LOCK = """
import fcntl, sys
with open(sys.argv[1], "a") as handle:
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        sys.exit(1)
"""


def _other_process_gets(lock_file: Path) -> bool:
    tried = subprocess.run([sys.executable, "-c", TRY_LOCK, str(lock_file)], check=False)
    assert tried.returncode in (0, 1)
    return tried.returncode == 0


def test_another_process_waits_while_the_lock_is_held(tmp_path: Path) -> None:
    lock_file = tmp_path / "demo.lock"
    with exclusive(lock_file):
        assert not _other_process_gets(lock_file)
    assert _other_process_gets(lock_file)


class _Factory:
    """The part of pytest's TempPathFactory that `shared_directory` uses."""

    def __init__(self, basetemp: Path) -> None:
        self.basetemp = basetemp

    def getbasetemp(self) -> Path:
        return self.basetemp


def test_the_workers_of_one_run_share_a_directory_and_other_runs_do_not(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    workers = [_Factory(tmp_path / "popen-gw0"), _Factory(tmp_path / "popen-gw1")]
    monkeypatch.setenv("PYTEST_XDIST_TESTRUNUID", "run1")
    first, second = (shared_directory(w) for w in workers)  # type: ignore[arg-type]
    assert first == second == tmp_path / "shared-run1" and first.is_dir()
    monkeypatch.setenv("PYTEST_XDIST_TESTRUNUID", "run2")
    assert shared_directory(workers[0]) != first  # type: ignore[arg-type]
    # Without xdist the session's own basetemp is the run's.
    monkeypatch.delenv("PYTEST_XDIST_TESTRUNUID")
    assert shared_directory(workers[0]) == tmp_path / "popen-gw0"  # type: ignore[arg-type]


def test_a_result_is_written_whole(tmp_path: Path) -> None:
    result = tmp_path / "demo-completed.json"
    write_atomically(result, '{"returncode": 0}')
    write_atomically(result, '{"returncode": 1}')
    assert result.read_text() == '{"returncode": 1}'
    assert [p.name for p in tmp_path.iterdir()] == ["demo-completed.json"]
