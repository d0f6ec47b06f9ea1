"""Commands that launch Dagster check their configuration first and fail in one line (exit
code 2, no Dagster trace); `timbel --debug` adds the traceback."""

from __future__ import annotations

from pathlib import Path

import click
import dagster as dg
import pytest
from click.testing import CliRunner

from tests.test_cli import invoke, run
from timbel_dagster.cli.app import main
from timbel_dagster.cli.common import friendly_errors, raised_by_user_code

_SAMPLE_HINT = "or set TIMBEL_SAMPLE_DATA=true to use the sample organisation"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ["ingest", "jenkins", "--since", "1d"],
            f"no CI/CD server is configured: set JENKINS_URL, {_SAMPLE_HINT}",
        ),
        (
            ["ingest", "gitlab", "--since", "1d"],
            f"no CI/CD server is configured: set GITLAB_URL, {_SAMPLE_HINT}",
        ),
        (
            ["logs", "follow", "jenkins", "shop/api/main", "3"],
            "Jenkins is not configured: set JENKINS_URL, JENKINS_USER and JENKINS_TOKEN",
        ),
        (
            ["build", "trigger", "gitlab", "shop/api"],
            "GitLab is not configured: set GITLAB_URL, GITLAB_TOKEN and GITLAB_PROJECTS",
        ),
        (
            ["metrics", "collect", "--hours", "1"],
            f"cluster metrics need Prometheus: set PROMETHEUS_URL, {_SAMPLE_HINT}",
        ),
    ],
)
def test_unconfigured_servers_are_one_line(args: list[str], message: str, tmp_path: Path) -> None:
    completed = invoke(args, tmp_path)
    assert completed.returncode == 2, completed.stderr
    assert completed.stderr.splitlines() == [f"timbel: error: {message}"]
    assert "Stack Trace" not in completed.stdout + completed.stderr
    # Checked before any run: nothing was launched in the Dagster instance.
    runs_db = tmp_path / ".timbel" / "dagster" / "history" / "runs.db"
    if runs_db.exists():
        instance = dg.DagsterInstance.from_config(str(tmp_path / ".timbel" / "dagster"))
        assert instance.get_runs() == []


def test_debug_prints_the_traceback_then_the_line(tmp_path: Path) -> None:
    completed = run(["--debug", "ingest", "jenkins", "--since", "1d"], tmp_path)
    assert completed.returncode == 2
    lines = completed.stderr.splitlines()
    assert lines[0] == "Traceback (most recent call last):"
    assert (
        lines[-1]
        == f"timbel: error: no CI/CD server is configured: set JENKINS_URL, {_SAMPLE_HINT}"
    )


class _Boom(RuntimeError):
    pass


def _run_failing_asset(error: Exception) -> None:
    @dg.asset(name="fails")
    def fails() -> None:
        raise error

    dg.materialize(
        [fails],
        instance=dg.DagsterInstance.ephemeral(),
        run_config={"loggers": {"console": {"config": {"log_level": "CRITICAL"}}}},
    )


class _StepFailure(Exception):
    """What a wrapping Dagster error looks like: it carries our exception."""

    def __init__(self, user_exception: BaseException) -> None:
        super().__init__(f'Error occurred while executing op "fails": {user_exception}')
        self.user_exception = user_exception


def test_the_exception_our_code_raised_is_found_inside_wrappers() -> None:
    ours = LookupError("jenkins shop/api #9: no such build")
    assert raised_by_user_code(_StepFailure(_StepFailure(ours))) is ours
    plain = ValueError("not in a run")
    assert raised_by_user_code(plain) is plain


@pytest.mark.parametrize(
    "error",
    [
        LookupError("jenkins shop/api #9: no such build"),
        _StepFailure(LookupError("jenkins shop/api #9: no such build")),
    ],
)
def test_a_failed_run_is_one_line(error: Exception) -> None:
    @click.command()
    @friendly_errors
    def command() -> None:
        _run_failing_asset(error)

    result = CliRunner().invoke(command, [])
    assert result.exit_code == 2
    assert result.output.splitlines() == ["timbel: error: jenkins shop/api #9: no such build"]


def test_a_defect_wrapped_by_dagster_is_one_line_pointing_at_the_run() -> None:
    @click.command()
    @friendly_errors
    def command() -> None:
        _run_failing_asset(_StepFailure(_Boom("disk on fire")))

    result = CliRunner().invoke(command, [])
    assert result.exit_code == 1
    assert result.output.splitlines() == [
        "timbel: error: _Boom: disk on fire (the run's log in the Dagster UI has the details; "
        "`timbel --debug ...` prints the traceback)"
    ]


def test_a_defect_of_our_own_keeps_its_traceback() -> None:
    @click.command()
    @friendly_errors
    def command() -> None:
        _run_failing_asset(_Boom("disk on fire"))

    result = CliRunner().invoke(command, [])
    assert result.exit_code == 1 and isinstance(result.exception, _Boom)


def test_debug_is_a_main_option() -> None:
    result = CliRunner().invoke(main, ["--help"])
    assert "--debug" in result.output and "traceback" in result.output


def test_an_unreachable_server_is_one_line_without_urllib3_retry_warnings(tmp_path: Path) -> None:
    # prometheus-api-client retries through urllib3, which logs a WARNING per retry; the
    # command's own line already says the server cannot be reached.
    # In process: the command's logging reaches its stderr as in a process (invoke), and the
    # retries run without their backoff sleeps (conftest).
    completed = invoke(
        ["metrics", "collect", "--hours", "1"], tmp_path, PROMETHEUS_URL="http://127.0.0.1:1"
    )
    assert completed.returncode == 2, completed.stderr
    assert completed.stderr.splitlines() == [
        'timbel: error: prometheus count by (__name__, cluster) ({__name__=~"kube_node_info|'
        "kube_node_status_capacity|kube_pod_info|kube_pod_status_phase|"
        'container_cpu_usage_seconds_total|container_memory_working_set_bytes"}): cannot reach '
        "http://127.0.0.1:1 (ConnectionError); is Prometheus up and PROMETHEUS_URL right?"
    ]


def test_a_key_error_is_a_defect_not_a_user_error() -> None:
    # KeyError is a LookupError, but Timbel never raises it on purpose.
    @click.command()
    @friendly_errors
    def command() -> None:
        _run_failing_asset(KeyError("stages"))

    result = CliRunner().invoke(command, [])
    assert result.exit_code == 1 and isinstance(result.exception, KeyError)
