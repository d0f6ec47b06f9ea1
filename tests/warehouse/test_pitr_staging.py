"""PITR's steps that need no PostgreSQL cluster: two recoveries to one target, each staged in
a directory of its own (the second to finish is refused, the first's copy kept whole), and a
`pg_ctl start -w` that gives up waiting while the server goes on starting."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from timbel_dagster.warehouse.backup import pitr
from timbel_dagster.warehouse.backup.crypto import BackupError
from timbel_dagster.warehouse.backup.recovered_server import start_and_wait


@pytest.fixture
def base(tmp_path: Path) -> Path:
    copy = tmp_path / "base"
    (copy / "global").mkdir(parents=True)
    (copy / "PG_VERSION").write_text("15\n")
    (copy / "global" / "pg_control").write_bytes(b"\0" * 64)
    (copy / "postgresql.auto.conf").write_text("# base\n")
    return copy


def test_a_second_recovery_to_the_same_target_keeps_the_first_ones_copy(
    base: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Recovery A is copying when recovery B (same target) starts and finishes: B's target
    is whole, A is refused when it renames, and neither leaves a staging directory."""
    target = tmp_path / "recovered"
    copytree, started = shutil.copytree, []

    def copy_then_let_b_run(src, dst, *args, **kwargs):
        copied = copytree(src, dst, *args, **kwargs)
        # copytree calls itself for subdirectories: B runs once A's whole copy is done, its
        # settings not yet written.
        if not started and Path(dst).parent == tmp_path:
            started.append(dst)
            pitr._materialize(base, target, "# run B\n", None)
        return copied

    monkeypatch.setattr(pitr.shutil, "copytree", copy_then_let_b_run)
    with pytest.raises(BackupError) as refused:
        pitr._materialize(base, target, "# run A\n", None)
    assert str(refused.value) == (
        f"--target {target} is no longer an empty directory (Directory not empty): another "
        "recovery to it finished first; nothing of this one was kept"
    )
    assert (target / "postgresql.auto.conf").read_text() == "# base\n# run B\n"
    assert (target / "recovery.signal").is_file() and (target / "PG_VERSION").is_file()
    assert (target.stat().st_mode & 0o777) == 0o700
    assert sorted(p.name for p in tmp_path.iterdir()) == ["base", "recovered"]


def test_a_killed_recoverys_staging_is_left_alone(base: Path, tmp_path: Path) -> None:
    """A staging directory of another run (live or killed) is never removed by this one."""
    other = tmp_path / ".recovered.pitr-partial"
    other.mkdir()
    (other / "PG_VERSION").write_text("15\n")
    seen: list[str] = []
    pitr._materialize(base, tmp_path / "recovered", "# mine\n", None, seen.append, "B1")
    assert (other / "PG_VERSION").read_text() == "15\n"
    [said] = seen
    assert said.startswith(f"copying base backup B1 to {tmp_path}/.recovered.pitr-")
    assert said.endswith(f", then renaming it to {tmp_path / 'recovered'}")


def test_the_copy_listens_on_its_port_on_loopback(tmp_path: Path) -> None:
    settings = pitr.recovery_settings(tmp_path, pitr.parse_target_time("2026-12-05T13:30Z"), 5439)
    assert settings.splitlines()[-2:] == ["port = 5439", "listen_addresses = '127.0.0.1'"]


def test_pg_ctl_giving_up_waiting_says_the_server_may_still_be_starting(tmp_path: Path) -> None:
    """`pg_ctl start -w -t N` exits 1 when the server is not ready in N seconds, leaving it
    starting (a long WAL replay): the error says so and how to stop it."""
    bindir, target = tmp_path / "bin", tmp_path / "recovered"
    bindir.mkdir()
    target.mkdir()
    starting = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        fake = bindir / "pg_ctl"
        fake.write_text(
            "#!/bin/sh\n"
            f"printf '{starting.pid}\\n{target}\\n' > {target}/postmaster.pid\n"
            "echo 'waiting for server to start.... stopped waiting' >&2\n"
            "echo 'pg_ctl: server did not start in time' >&2\n"
            "exit 1\n"
        )
        fake.chmod(0o755)
        with pytest.raises(BackupError) as failed:
            start_and_wait(target, "15", bindir, ["env"], 1)  # as runuser would
    finally:
        starting.kill()
        starting.wait()
    message = str(failed.value)
    assert message.startswith("pg_ctl start failed (exit 1): pg_ctl: server did not start in")
    assert "the recovered server may still be starting (replaying WAL) or running" in message
    assert message.endswith(f"stop it with: env {fake} stop -D {target}")
    assert "\n" not in message
