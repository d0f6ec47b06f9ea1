"""Build parameters whose names look secret (issue #13, finding 4): the CI server gets the
real value; the audit log, the run log and error messages show `***`."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import dagster as dg
import pytest
from sqlalchemy import select

from tests.fakes.jenkins_server import FakeJenkins
from tests.jobs.test_follow import JOB, _resources
from timbel_dagster.jobs.builds import trigger_build
from timbel_dagster.redaction import looks_secret, redact_parameters
from timbel_dagster.warehouse.engine import get_engine
from timbel_dagster.warehouse.schema.models import AuditEvent


@pytest.fixture
def jenkins() -> Iterator[FakeJenkins]:
    server = FakeJenkins()
    server.add_job(JOB, builds=1, first_timestamp=int(time.time() * 1000) - 3_600_000)
    server.start()
    yield server
    server.stop()


def _trigger(jenkins: FakeJenkins, url: str, instance: dg.DagsterInstance, **parameters: str):
    return trigger_build.execute_in_process(
        run_config={
            "ops": {
                "trigger_and_follow": {
                    "config": {
                        "system": "jenkins",
                        "pipeline": JOB,
                        "parameters": parameters,
                        "poll_seconds": 0,
                    }
                }
            }
        },
        resources=_resources(url, jenkins),
        instance=instance,
        tags={"timbel/actor": "minji.kim"},
        raise_on_error=False,
    )


def test_a_secret_parameter_reaches_jenkins_but_is_audited_and_logged_as_stars(
    jenkins: FakeJenkins, warehouse_url: str
) -> None:
    jenkins.start_queued_builds = True
    instance = dg.DagsterInstance.ephemeral()
    result = _trigger(jenkins, warehouse_url, instance, DB_PASSWORD="hunter2", VERSION="1.2")
    assert result.success
    [(_job, received)] = jenkins.queue.values()
    assert (received["DB_PASSWORD"], received["VERSION"]) == ("hunter2", "1.2")
    # In a form body, as Jenkins documents; not in the URL, which proxies and logs record.
    [(_, _, query)] = [r for r in jenkins.requests if r[1].endswith("/buildWithParameters")]
    assert query == ""
    with get_engine(warehouse_url).connect() as connection:
        [details] = connection.execute(
            select(AuditEvent.details)
            .order_by(AuditEvent.id)
            .where(AuditEvent.action == "build.trigger")
        ).scalars()
    assert details["parameters"] == {"DB_PASSWORD": "***", "VERSION": "1.2"}
    messages = [entry.user_message for entry in instance.all_logs(result.run_id)]
    # The fake echoes its parameters into the build log, which the run log streams.
    assert "Started with {'DB_PASSWORD': '***', 'VERSION': '1.2'}" in messages
    assert not any("hunter2" in message for message in messages)


def test_a_refused_trigger_names_no_parameter_value(
    jenkins: FakeJenkins, warehouse_url: str
) -> None:
    """requests puts the whole URL, query and all, into an HTTPError's message."""
    jenkins.fail_next(1, status=400, body=b"Bad Request", path_contains="buildWithParameters")
    instance = dg.DagsterInstance.ephemeral()
    result = _trigger(jenkins, warehouse_url, instance, DB_PASSWORD="hunter2")
    assert not result.success
    [failure] = [e for e in result.all_events if e.event_type_value == "STEP_FAILURE"]
    error = failure.step_failure_data.error
    message = error.cause.message.strip()
    assert message.startswith(
        f"timbel_dagster.resources.errors.SourceError: jenkins {JOB}: request failed: "
        "400 Client Error: Bad Request for url: http://127.0.0.1:"
    )
    assert message.endswith("/buildWithParameters")
    assert "hunter2" not in error.to_string()


@pytest.mark.parametrize(
    ("name", "secret"),
    [
        ("DB_PASSWORD", True), ("db_passwd", True), ("SSH_PASSPHRASE", True),
        ("client_secret", True), ("GITLAB_TOKEN", True), ("private_token", True),
        ("API_KEY", True), ("apiKey", True), ("x-api-key", True), ("AWS_CREDENTIALS", True),
        ("BASIC_AUTH", True), ("Authorization", True), ("oauth_refresh", True),
        ("DB_PASS", True), ("SIGNING_PRIVATE", True), ("GITLAB_PAT", True), ("sig", True),
        ("X-Amz-Signature", True), ("SIGNAL", False),
        ("VERSION", False), ("DRY_RUN", False), ("AUTHOR", False), ("MONKEY", False),
        ("BYPASS_CACHE", False), ("KEYSTORE_PATH", False), ("PATH", False),
    ],
)  # fmt: skip
def test_which_names_look_secret(name: str, secret: bool) -> None:
    assert looks_secret(name) is secret
    assert redact_parameters({name: "v"}) == {name: "***" if secret else "v"}


def test_the_cli_keeps_a_secret_parameter_out_of_dagster_and_the_audit_log(
    jenkins: FakeJenkins, tmp_path: Path
) -> None:
    """`timbel build trigger ... --param DB_PASSWORD=hunter2`: Dagster keeps a run's config
    for good (its run storage, the UI's run page), so the secret is only referenced there."""
    from tests.test_cli import run

    jenkins.start_queued_builds = True
    home = tmp_path / "dagster"
    database = f"sqlite:///{tmp_path / 'w.db'}"
    env = {
        "JENKINS_URL": jenkins.url,
        "JENKINS_USER": jenkins.user,
        "JENKINS_TOKEN": jenkins.token,
        "TIMBEL_DATABASE_URL": database,
        "DAGSTER_HOME": str(home),
    }
    args = ["build", "trigger", "jenkins", JOB, "--param", "DB_PASSWORD=hunter2",
            "--param", "VERSION=1.2", "--poll", "0"]  # fmt: skip
    triggered = run(args, tmp_path, **env)
    assert triggered.returncode == 0, triggered.stderr
    [(_job, received)] = jenkins.queue.values()
    assert (received["DB_PASSWORD"], received["VERSION"]) == ("hunter2", "1.2")
    assert "hunter2" not in triggered.stdout + triggered.stderr
    assert "Started with {'DB_PASSWORD': '***', 'VERSION': '1.2'}" in triggered.stdout
    stored = [p for p in home.rglob("*") if p.is_file()]
    assert stored and not [p for p in stored if b"hunter2" in p.read_bytes()]
    with get_engine(database).connect() as connection:
        [details] = connection.execute(
            select(AuditEvent.details)
            .order_by(AuditEvent.id)
            .where(AuditEvent.action == "build.trigger")
        ).scalars()
    assert details["parameters"] == {"DB_PASSWORD": "***", "VERSION": "1.2"}
