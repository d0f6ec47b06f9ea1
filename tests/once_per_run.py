"""Work that every pytest-xdist worker of one test run shares: the first worker that needs it
does it, the others wait for it and use its result.

A session fixture runs once per worker, so an expensive one (the demo, about a minute) ran
once on each worker. xdist's `--dist loadgroup` was meant to send all its users to one worker,
but with pytest 9.2 and xdist 3.8 the grouping does not take effect (pytest-xdist#1386), and
any other `--dist` mode spreads them anyway. A lock in a directory all workers of the run
see makes "once per run" hold whatever the scheduling.
"""

from __future__ import annotations

import fcntl
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest


def shared_directory(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A directory that every worker of this test run sees, and no other run.

    Under xdist each worker's basetemp is `<the controller's basetemp>/popen-gwN`, and the
    controller's basetemp is new for each run; the run's id keys it as well, so a directory
    never holds a result of another run. Without xdist the session's basetemp serves."""
    basetemp = tmp_path_factory.getbasetemp()
    run_id = os.environ.get("PYTEST_XDIST_TESTRUNUID")
    if run_id is None:
        return basetemp
    directory = basetemp.parent / f"shared-{run_id}"
    directory.mkdir(exist_ok=True)
    return directory


@contextmanager
def exclusive(lock_file: Path) -> Iterator[None]:
    """Hold an exclusive lock on `lock_file` (created if missing) across processes; a second
    worker blocks here until the first leaves. The kernel drops the lock if its holder dies,
    so a crashed worker never leaves the others waiting."""
    with lock_file.open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def write_atomically(path: Path, text: str) -> None:
    """Write `path` whole or not at all: a reader never finds half a result."""
    partial = path.with_name(f"{path.name}.partial")
    partial.write_text(text)
    partial.replace(path)
