"""Op jobs `follow_build` and `trigger_build`: a build's log streamed live into the run log.

Launched by the build sensors when a build starts, from the Launchpad, or by
`timbel logs follow` / `timbel build trigger`.
"""

# No `from __future__ import annotations`: Dagster reads the ops' annotations.
import logging
import sys
from collections.abc import Sequence

import dagster as dg

from timbel_dagster.bindings.warehouse import WarehouseResource
from timbel_dagster.jobs.guard import NO_RETRIES
from timbel_dagster.jobs.run_actor import note_unverified, run_actor
from timbel_dagster.redaction import mask, redact_parameters, secret_values
from timbel_dagster.resources.gitlab.source import GitLabResource
from timbel_dagster.resources.jenkins.source import JenkinsResource
from timbel_dagster.warehouse.audit.chain import append_event

# One run-log event carries at most this much log text; all of it is stored regardless.
EVENT_TEXT_LIMIT = 64 * 1024


class FollowConfig(dg.Config):
    system: str  # jenkins | gitlab
    pipeline: str  # Jenkins job full name, or GitLab project path or id
    build: int  # Jenkins build number, or GitLab pipeline id
    poll_seconds: float = 2.0


class TriggerConfig(dg.Config):
    system: str
    pipeline: str
    parameters: dict[str, str] = {}
    ref: str | None = None  # GitLab branch; the project's default branch when unset
    poll_seconds: float = 2.0


def _emitter(context: dg.OpExecutionContext, hidden: Sequence[str] = ()):
    """What prints `text` to the run log, each of the `hidden` values shown as `***`."""

    def emit(text: str) -> None:
        text = mask(text, hidden)
        if len(text) > EVENT_TEXT_LIMIT:
            more = len(text) - EVENT_TEXT_LIMIT
            text = f"{text[:EVENT_TEXT_LIMIT]}\n[timbel] ... {more} more characters stored"
        context.log.info(text.rstrip("\n"))

    return emit


def _source(system: str, jenkins: JenkinsResource, gitlab: GitLabResource):
    if system == "jenkins":
        return jenkins.source()
    if system == "gitlab":
        return gitlab.source()
    raise ValueError(f"system must be 'jenkins' or 'gitlab', not {system!r}")


@dg.op(description="Stream a build's log into the run log and the warehouse until it ends.")
def follow(
    context: dg.OpExecutionContext,
    config: FollowConfig,
    warehouse: WarehouseResource,
    jenkins: JenkinsResource,
    gitlab: GitLabResource,
) -> dict:
    # lazy: jobs.record loads SQLAlchemy; the code location loads without it
    from timbel_dagster.jobs.record import follow_build

    actor = run_actor(context.run.tags)
    note_unverified(context.log, actor)
    report = follow_build(
        config.system,
        _source(config.system, jenkins, gitlab),
        warehouse.engine(),
        config.pipeline,
        config.build,
        _emitter(context),
        actor=actor.name,
        poll_seconds=config.poll_seconds,
        audit_details=actor.details,
    )
    context.add_output_metadata({k: v for k, v in report.items() if isinstance(v, int | str)})
    return report


@dg.op(description="Start a build (Jenkins buildWithParameters, GitLab pipeline) and follow it.")
def trigger_and_follow(
    context: dg.OpExecutionContext,
    config: TriggerConfig,
    warehouse: WarehouseResource,
    jenkins: JenkinsResource,
    gitlab: GitLabResource,
) -> dict:
    # lazy: jobs.record loads SQLAlchemy; the code location loads without it
    from timbel_dagster.jobs.record import follow_build, trigger_build

    source = _source(config.system, jenkins, gitlab)
    # The server gets the real values; the audit log and the run log see `***` for every
    # parameter whose name looks secret (`redaction.looks_secret`), wherever it is echoed.
    emit = _emitter(context, hidden=secret_values(config.parameters))
    actor = run_actor(context.run.tags)
    note_unverified(context.log, actor)
    build = trigger_build(
        config.system, source, config.pipeline, dict(config.parameters), config.ref, emit
    )
    engine = warehouse.engine()
    with engine.begin() as connection:
        append_event(
            connection,
            actor=actor.name,
            action="build.trigger",
            target=f"{config.system} {config.pipeline} #{build}",
            details={
                "parameters": redact_parameters(config.parameters),
                "ref": config.ref,
                "run_id": context.run_id,
                **actor.details,
            },
        )
    report = follow_build(
        config.system,
        source,
        engine,
        config.pipeline,
        build,
        emit,
        actor=actor.name,
        poll_seconds=config.poll_seconds,
        audit_details=actor.details,
    )
    context.add_output_metadata({k: v for k, v in report.items() if isinstance(v, int | str)})
    return report


class _MessageOnly(logging.Formatter):
    """The op's own message, without Dagster's job, run and step prefix."""

    def format(self, record: logging.LogRecord) -> str:
        meta = getattr(record, "dagster_meta", None) or {}
        return str(meta.get("orig_message") or record.getMessage())


def own_messages_only(record: logging.LogRecord) -> bool:
    """Keep what the op logged; drop Dagster's framework events ("Execution of step ...
    failed."): a failure reaches the terminal once, as the command's one-line error."""
    meta = getattr(record, "dagster_meta", None) or {}
    return meta.get("dagster_event") is None


@dg.logger(description="Prints each message alone, so a followed log reads like a log.")
def terminal_logger(init_context: dg.InitLoggerContext) -> logging.Logger:
    logger = logging.getLogger("timbel.terminal")
    if not logger.handlers:
        handler = logging.StreamHandler(sys.stdout)
        handler.setFormatter(_MessageOnly())
        handler.addFilter(own_messages_only)
        logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    logger.propagate = False
    return logger


_LOGGERS = {"console": dg.colored_console_logger, "terminal": terminal_logger}


@dg.job(
    executor_def=dg.in_process_executor,
    logger_defs=_LOGGERS,
    description="Follow one build to its end.",
)
def follow_build():
    follow()


@dg.job(
    executor_def=dg.in_process_executor,
    logger_defs=_LOGGERS,
    tags=NO_RETRIES,
    description="Trigger a build with parameters, then follow it to its end.",
)
def trigger_build():
    trigger_and_follow()
