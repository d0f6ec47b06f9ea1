"""The `timbel` command end to end.

`run` starts the installed entry point in a subprocess: for what only a real process shows
(`--help` as installed, exit codes and tracebacks as a user sees them, the environment a
command inherits). `invoke` runs the same command in this process through click's CliRunner,
with the same environment, working directory and result, and without a new Python process
(a second or more of imports each): for tests that only check what a command prints, returns
and writes.
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import traceback
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from click.testing import CliRunner
from sqlalchemy import select

from timbel_dagster.cli.app import main
from timbel_dagster.settings import get_settings
from timbel_dagster.warehouse import migrate
from timbel_dagster.warehouse.audit.chain import verify_chain
from timbel_dagster.warehouse.engine import get_engine
from timbel_dagster.warehouse.schema.models import AuditEvent

MIGRATIONS = Path(__file__).resolve().parents[1] / "timbel_dagster/warehouse/migrations/versions"

TIMBEL = str(Path(sys.executable).with_name("timbel"))
# Variables of the test process a command must not see: each test says what it configures.
DROPPED = ("TIMBEL_", "JENKINS", "GITLAB", "DAGSTER_HOME")
DEFAULTS = {"TIMBEL_USER": "minji.kim", "TIMBEL_SAMPLE_END_DATE": "2026-11-01"}


def run(
    args: list[str], cwd: Path, *, timeout: float = 300, stdin: str | None = None, **env: str
) -> subprocess.CompletedProcess:
    """`timbel ARGS` in a subprocess in `cwd` (`stdin`: its input, else this process's)."""
    environment = {k: v for k, v in os.environ.items() if not k.startswith(DROPPED)}
    environment |= {**DEFAULTS, **env}
    return subprocess.run(
        [TIMBEL, *args],
        cwd=cwd,
        env=environment,
        input=stdin,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def _loggers() -> dict[str, logging.Logger]:
    manager = logging.Logger.manager
    found = {k: v for k, v in manager.loggerDict.items() if isinstance(v, logging.Logger)}
    return found | {"": logging.getLogger()}


@contextmanager
def _logging_as_in_a_new_process() -> Iterator[None]:
    """Logging without pytest's handlers on the root logger (so a command's own log lines
    reach its stderr, as in a process); afterwards every logger as it was. A handler a
    command adds binds the stream of that invocation (a process has one: `timbel.terminal`
    binds sys.stdout once), so handlers added inside are closed and removed."""
    saved = {
        name: (logger.handlers[:], logger.level, logger.propagate)
        for name, logger in _loggers().items()
    }
    logging.getLogger().handlers.clear()
    try:
        yield
    finally:
        for name, logger in _loggers().items():
            handlers, level, propagate = saved.get(name, ([], logging.NOTSET, True))
            for handler in logger.handlers:
                if handler not in handlers:
                    handler.close()
            logger.handlers[:] = handlers
            logger.setLevel(level)
            logger.propagate = propagate


@contextmanager
def _as_a_new_process(cwd: Path, env: dict[str, str]) -> Iterator[None]:
    """The state a new `timbel` process would start from, restored afterwards: environment,
    working directory, settings cache, logging."""
    saved_env = os.environ.copy()
    saved_cwd = Path.cwd()
    for name in [k for k in os.environ if k.startswith(DROPPED)]:
        del os.environ[name]
    os.environ.update({**DEFAULTS, **env})
    os.chdir(cwd)
    get_settings.cache_clear()
    try:
        with _logging_as_in_a_new_process():
            yield
    finally:
        # Close the pooled connections the command left to its warehouse, as its exit would
        # (a SQLite warehouse in WAL mode is then checkpointed, and can be copied as a file).
        try:
            url = get_settings().database_url
        except ValueError:  # settings a test made invalid on purpose
            url = None
        if url:
            for read_only in (False, True):
                get_engine(url, read_only).dispose()
        get_settings.cache_clear()
        os.chdir(saved_cwd)
        os.environ.clear()
        os.environ.update(saved_env)


def invoke(
    args: list[str], cwd: Path, *, timeout: float = 300, stdin: str | None = None, **env: str
) -> subprocess.CompletedProcess:
    """`timbel ARGS` in this process, as `run` would in a subprocess: the same environment and
    working directory, the same result (an exception that escapes the command is printed as
    a traceback on stderr with exit code 1, as Python does); `stdin` is its input (none: a
    prompt aborts, as without a terminal). `timeout` is not enforced."""
    del timeout  # kept so a call can move between run and invoke unchanged
    with _as_a_new_process(cwd, env):
        result = CliRunner().invoke(main, args, input=stdin, prog_name="timbel")
    stderr = result.stderr
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        stderr += "".join(traceback.format_exception(result.exception))
    return subprocess.CompletedProcess(["timbel", *args], result.exit_code, result.stdout, stderr)


@pytest.mark.slow
def test_full_cycle_on_postgres(postgres_server_url: str, tmp_path: Path) -> None:
    if migrate.current_revision(postgres_server_url):
        migrate.downgrade(postgres_server_url, "base")
    db = {"TIMBEL_DATABASE_URL": postgres_server_url}

    # The installed entry point once; then in process (`invoke`), as `run` would.
    first = run(["db", "upgrade"], tmp_path, **db)
    head = migrate.head_revision()
    assert first.returncode == 0 and f"Migrated empty -> {head}" in first.stdout
    again = invoke(["db", "upgrade", "--json"], tmp_path, **db)
    assert json.loads(again.stdout)["changed"] is False

    loaded = json.loads(invoke(["sample", "--json"], tmp_path, **db).stdout)
    reloaded = json.loads(invoke(["sample", "--json"], tmp_path, **db).stdout)
    assert loaded["tables"]["pipeline_executions"]["written"] > 1000
    assert {t["written"] for t in reloaded["tables"].values()} == {0}
    with get_engine(postgres_server_url).connect() as connection:
        events = connection.execute(
            select(AuditEvent.actor, AuditEvent.action).order_by(AuditEvent.id)
        ).all()
        assert verify_chain(connection).intact
    assert events == [("minji.kim", "db.upgrade")] + [("minji.kim", "sample.load")] * 2

    failed = json.loads(
        invoke(
            ["executions", "list", "--status", "failed", "--limit", "500", "--json"], tmp_path, **db
        ).stdout
    )
    assert failed and {r["status"] for r in failed} == {"failed"}
    payments = json.loads(
        invoke(
            ["executions", "list", "--pipeline", "payments-api", "--since", "2026-10-15", "--json"],
            tmp_path,
            **db,
        ).stdout
    )
    assert payments and all(r["pipeline"].startswith("payments-api") for r in payments)
    assert all(r["started_at"] >= "2026-10-15" for r in payments)
    found = json.loads(
        invoke(
            ["executions", "list", "--search", "INTEGRATION-tests", "--json"], tmp_path, **db
        ).stdout
    )
    assert found and all("integration-tests" in r["error_message"] for r in found)

    shown = invoke(["executions", "show", failed[0]["id"][:8]], tmp_path, **db)
    assert shown.returncode == 0, shown.stderr
    assert "stages (timeline" in shown.stdout and "failed" in shown.stdout
    detail = json.loads(
        invoke(["executions", "show", failed[0]["id"], "--json"], tmp_path, **db).stdout
    )
    assert detail["id"] == failed[0]["id"] and len(detail["stages"]) >= 6


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        (
            "postgresql://postgres@127.0.0.1:1/nowhere",
            "timbel: error: TIMBEL_DATABASE_URL: cannot connect to postgresql+psycopg://",
        ),
        ("definitely not a url", "timbel: error: TIMBEL_DATABASE_URL: not a database URL"),
        ("mysql://root@127.0.0.1/x", "timbel: error: TIMBEL_DATABASE_URL: unsupported database"),
    ],
)
@pytest.mark.parametrize("command", [["db", "upgrade"], ["executions", "list"], ["sample"]])
def test_bad_database_url_is_one_line(
    tmp_path: Path, url: str, expected: str, command: list[str]
) -> None:
    completed = invoke(command, tmp_path, TIMBEL_DATABASE_URL=url)
    assert completed.returncode == 2
    assert completed.stderr.startswith(expected)
    assert completed.stderr.count("\n") == 1


def test_bad_input_names_what_was_wrong(tmp_path: Path) -> None:
    invoke(["db", "upgrade"], tmp_path)
    status = invoke(["executions", "list", "--status", "exploded"], tmp_path)
    assert status.returncode == 2 and "status must be one of" in status.stderr
    since = invoke(["executions", "list", "--since", "last tuesday"], tmp_path)
    assert since.returncode == 2 and "not a duration" in since.stderr
    missing = invoke(["executions", "show", "00000000-0000-0000-0000-000000000000"], tmp_path)
    assert missing.returncode == 2 and "no execution with id" in missing.stderr


def test_db_current_and_downgrade(tmp_path: Path) -> None:
    assert "current: empty" in invoke(["db", "current"], tmp_path).stdout
    invoke(["db", "upgrade"], tmp_path)
    # The head is the newest migration file's revision (0001, 0002, ... in order).
    head = migrate.head_revision()
    assert head == sorted(MIGRATIONS.glob("[0-9][0-9][0-9][0-9]_*.py"))[-1].name[:4]
    assert f"current: {head}  head: {head}" in invoke(["db", "current"], tmp_path).stdout
    down = invoke(["db", "downgrade", "base", "--yes"], tmp_path)
    assert down.returncode == 0 and f"{head} -> empty" in down.stdout
    refused = invoke(["db", "downgrade", "base"], tmp_path)  # no terminal to confirm: aborts
    assert refused.returncode != 0


def test_history_stats_and_timeline(tmp_path: Path) -> None:
    assert invoke(["sample"], tmp_path).returncode == 0
    stats = json.loads(invoke(["executions", "stats", "--json"], tmp_path).stdout)
    assert len(stats) == 12
    assert all(s["p50_seconds"] <= s["p90_seconds"] <= s["p99_seconds"] for s in stats)
    table = invoke(["executions", "stats", "--pipeline", "payments"], tmp_path).stdout
    assert "payments-api/main" in table and "P99" in table and "%" in table

    [latest] = json.loads(
        invoke(
            [
                "executions",
                "list",
                "--pipeline",
                "web-frontend",
                "--status",
                "success",
                "--limit",
                "1",
                "--json",
            ],
            tmp_path,
        ).stdout
    )
    listed = invoke(
        ["executions", "list", "--pipeline", "web-frontend", "--limit", "3"], tmp_path
    ).stdout
    assert "duration percentiles of these pipelines:" in listed
    shown = invoke(["executions", "show", latest["id"]], tmp_path).stdout
    assert "stages (timeline from the start of the execution):" in shown
    assert "test / e2e-tests" in shown and "|" in shown and "typical" in shown
    detail = json.loads(invoke(["executions", "show", latest["id"], "--json"], tmp_path).stdout)
    assert detail["stages"][0]["offset_seconds"] is not None
    assert detail["pipeline_percentiles"]["pipeline"] == "commerce/web-frontend"


def test_reading_an_outdated_warehouse_says_to_upgrade(tmp_path: Path) -> None:
    invoke(["db", "upgrade", "--revision", "0001"], tmp_path)
    old = invoke(["executions", "list"], tmp_path)
    assert old.returncode == 2
    assert "run `timbel db upgrade`" in old.stderr and "at 0001" in old.stderr


def test_help_as_installed(tmp_path: Path) -> None:
    """The installed entry point, as a user first runs it."""
    completed = run(["--help"], tmp_path)
    assert completed.returncode == 0 and completed.stderr == ""
    assert "Usage: timbel [OPTIONS] COMMAND" in completed.stdout
    assert all(f"  {name} " in completed.stdout for name in ("db", "demo", "deploy", "sample"))


@pytest.mark.parametrize(
    "args",
    [
        ["db", "current"],
        ["executions", "list", "--status", "exploded"],
        ["executions", "list", "--json"],
        ["no-such-command"],
    ],
)
def test_invoke_prints_and_exits_as_the_installed_command(args: list[str], tmp_path: Path) -> None:
    for name in ("process", "in-process"):
        (tmp_path / name).mkdir()
    ran = run(args, tmp_path / "process", TIMBEL_HOME=str(tmp_path / "process"))
    invoked = invoke(args, tmp_path / "in-process", TIMBEL_HOME=str(tmp_path / "in-process"))
    assert (invoked.returncode, invoked.stdout) == (ran.returncode, ran.stdout)
    assert invoked.stderr.replace("in-process", "process") == ran.stderr


def test_invoke_starts_like_a_new_process_and_leaves_no_trace(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    elsewhere = tmp_path / "elsewhere.db"
    monkeypatch.setenv("TIMBEL_DATABASE_URL", f"sqlite:///{elsewhere}")
    monkeypatch.setenv("TIMBEL_LOG_LEVEL", "DEBUG")
    get_settings.cache_clear()
    assert get_settings().timbel_log_level == "DEBUG"  # cached in this process
    environment, directory = dict(os.environ), Path.cwd()
    handlers = {name: logger.handlers[:] for name, logger in _loggers().items()}

    shown = invoke(["db", "current"], tmp_path, TIMBEL_USER="someone")

    assert shown.returncode == 0, shown.stderr  # the test's variables did not reach it
    assert "current: empty" in shown.stdout
    assert (tmp_path / ".timbel" / "warehouse.db").exists()  # in its working directory
    assert not elsewhere.exists()
    assert dict(os.environ) == environment and Path.cwd() == directory
    assert {name: _loggers()[name].handlers for name in handlers} == handlers
    assert get_settings().timbel_log_level == "DEBUG"  # read again, from the test's variables


def test_invoke_prints_an_escaped_exception_as_python_would(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from timbel_dagster.warehouse import migrate

    def broken(url: str) -> None:
        raise KeyError("boom")

    monkeypatch.setattr(migrate, "current_revision", broken)
    failed = invoke(["db", "current"], tmp_path)
    assert failed.returncode == 1
    assert failed.stderr.startswith("Traceback (most recent call last):")
    assert failed.stderr.endswith("KeyError: 'boom'\n")


def test_a_handler_a_command_adds_does_not_outlive_its_invocation() -> None:
    """A command's handler binds that invocation's output (`timbel.terminal` binds
    sys.stdout once per process): the next invocation must get its own."""
    existing = logging.getLogger("timbel_dagster")
    before = existing.handlers[:]
    with _logging_as_in_a_new_process():
        assert logging.getLogger().handlers == []  # a command's basicConfig takes effect
        existing.addHandler(logging.StreamHandler(sys.stdout))
        logging.getLogger("timbel.tests.new").addHandler(logging.StreamHandler(sys.stdout))
    assert existing.handlers == before
    assert logging.getLogger("timbel.tests.new").handlers == []
