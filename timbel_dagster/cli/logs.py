"""`timbel logs` and `timbel build`: follow, search and trigger builds."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import click

from timbel_dagster.cli.common import (
    connect,
    fail,
    friendly_errors,
    parse_since,
    print_json,
    settings_or_exit,
)
from timbel_dagster.cli.tables import say
from timbel_dagster.jobs.run_actor import ACTOR_TAG, acting_as
from timbel_dagster.redaction import looks_secret
from timbel_dagster.runs import open_instance
from timbel_dagster.warehouse import migrate
from timbel_dagster.warehouse.read.log_search import search_logs

SYSTEMS = click.Choice(["jenkins", "gitlab"])


def _run(job_name: str, op: str, config: dict[str, Any], as_json: bool) -> dict[str, Any]:
    """Run an op job in process in the UI's instance, the log printed as it arrives."""
    # lazy: bindings.warehouse loads Dagster; `timbel --help` loads without it
    from timbel_dagster.bindings.warehouse import WarehouseResource
    from timbel_dagster.definitions import build_definitions
    from timbel_dagster.resources.gitlab.source import GitLabResource
    from timbel_dagster.resources.jenkins.source import JenkinsResource

    settings = settings_or_exit()
    servers = {"jenkins": JenkinsResource(), "gitlab": GitLabResource()}
    # Configuration first: an unconfigured server is one line, before any run is launched.
    servers[config["system"]].source()
    migrate.upgrade(settings.database_url, actor=settings.timbel_user)
    job = build_definitions(settings.timbel_history_start).resolve_job_def(job_name)
    instance = open_instance(settings.dagster_home)
    loggers = {} if as_json else {"terminal": {}}
    try:
        # The run acts as TIMBEL_USER (the tag only shows it in the UI: run_actor).
        with acting_as(settings.timbel_user):
            result = job.execute_in_process(
                run_config={"ops": {op: {"config": config}}, "loggers": loggers},
                resources={
                    "warehouse": WarehouseResource(database_url=settings.database_url),
                    **servers,
                },
                instance=instance,
                tags={ACTOR_TAG: settings.timbel_user},
            )
    finally:
        instance.dispose()
    return result.output_for_node(op) | {"run_id": result.run_id}


@click.group()
def logs() -> None:
    """Build logs: follow one live, search the stored ones."""


@logs.command("follow")
@click.argument("system", type=SYSTEMS)
@click.argument("pipeline")
@click.argument("build", type=int)
@click.option("--poll", "poll_seconds", type=float, default=2.0, show_default=True)
@click.option("--json", "as_json", is_flag=True)
@friendly_errors
def logs_follow(system: str, pipeline: str, build: int, poll_seconds: float, as_json: bool) -> None:
    """Stream a build's log (Jenkins job + build number, GitLab project + pipeline id) to the
    terminal, the Dagster run log and the warehouse until the build ends."""
    report = _run(
        "follow_build",
        "follow",
        {"system": system, "pipeline": pipeline, "build": build, "poll_seconds": poll_seconds},
        as_json,
    )
    if as_json:
        print_json(report)


@logs.command("search")
@click.argument("pattern")
@click.option("--pipeline", help="Part of the pipeline name.")
@click.option("--since", help="7d, 12h, or an ISO date/time.")
@click.option("--limit", type=int, default=100, show_default=True)
@click.option("--json", "as_json", is_flag=True)
@friendly_errors
def logs_search(
    pattern: str, pipeline: str | None, since: str | None, limit: int, as_json: bool
) -> None:
    """Find log lines holding PATTERN (3 characters at least): full-text on PostgreSQL, else a
    case-insensitive substring match."""
    from dataclasses import asdict

    with connect() as connection:
        found = search_logs(
            connection, pattern, pipeline=pipeline, since=parse_since(since), limit=limit
        )
    if as_json:
        print_json([asdict(match) for match in found])
        return
    if not found:
        say(
            "No stored log line matches. Logs are stored as Timbel follows builds: "
            "`timbel logs follow SYSTEM PIPELINE BUILD`, `timbel build trigger`, and the "
            "build sensors' follow_build runs."
        )
    for m in found:
        click.echo(f"{m.execution_id[:8]} {m.pipeline} #{m.external_id}:{m.line_number}: {m.line}")


@click.group()
def build() -> None:
    """Start builds on the CI servers."""


@contextmanager
def _secrets_by_reference(parameters: dict[str, str]) -> Iterator[dict[str, Any]]:
    """The run config's `parameters`: a secret-looking one (`redaction.looks_secret`) as
    `{"env": VARIABLE}`, its value put in this process's environment for the in-process run
    and removed after it. Dagster keeps a run's config for good (run storage, the UI's run
    page); this way it keeps the variable's name, never the value."""
    config: dict[str, Any] = {}
    variables = []
    for index, (key, value) in enumerate(parameters.items()):
        if not looks_secret(key):
            config[key] = value
            continue
        variable = f"TIMBEL_BUILD_PARAMETER_{os.getpid()}_{index}"
        os.environ[variable] = value
        variables.append(variable)
        config[key] = {"env": variable}
    try:
        yield config
    finally:
        for variable in variables:
            os.environ.pop(variable, None)


def _parameters(pairs: tuple[str, ...]) -> dict[str, str]:
    parameters = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            fail(f"--param must look like KEY=VALUE, not {pair!r}")
        parameters[key] = value
    return parameters


@build.command("trigger")
@click.argument("system", type=SYSTEMS)
@click.argument("pipeline")
@click.option("--param", "params", multiple=True, help="KEY=VALUE, repeatable.")
@click.option("--ref", help="GitLab branch (default: the project's default branch).")
@click.option("--poll", "poll_seconds", type=float, default=2.0, show_default=True)
@click.option("--json", "as_json", is_flag=True)
@friendly_errors
def build_trigger(
    system: str,
    pipeline: str,
    params: tuple[str, ...],
    ref: str | None,
    poll_seconds: float,
    as_json: bool,
) -> None:
    """Trigger a build (Jenkins buildWithParameters, GitLab pipeline), then follow it.
    Parameters whose names look secret (password, token, key, ...) are sent as given, and
    shown as *** in the audit log and the run log."""
    with _secrets_by_reference(_parameters(params)) as parameters:
        report = _run(
            "trigger_build",
            "trigger_and_follow",
            {
                "system": system,
                "pipeline": pipeline,
                "parameters": parameters,
                "ref": ref,
                "poll_seconds": poll_seconds,
            },
            as_json,
        )
    if as_json:
        print_json(report)
