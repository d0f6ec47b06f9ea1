"""`timbel deploy`: deployment requests and their approvals."""

from __future__ import annotations

from typing import Any

import click

from timbel_dagster.cli.common import friendly_errors, print_json, writable_engine
from timbel_dagster.cli.risk import advice_lines
from timbel_dagster.cli.tables import Column, plural, print_table, when
from timbel_dagster.deploy.configured import configured_requests
from timbel_dagster.ml.risk.scoring import score_request
from timbel_dagster.warehouse.schema.deploy import REQUEST_STATUSES
from timbel_dagster.warehouse.schema.deploy import DeploymentRequest as R

AS_HELP = "Act as this user (default TIMBEL_USER); must exist in the users table."


def _requests():
    import logging

    settings, engine = writable_engine()
    # Which channels are off is the operators' business (the sensors log it), not noise on
    # every command a developer types.
    quiet = logging.getLogger("timbel_dagster.cli.deploy.channels")
    quiet.setLevel(logging.ERROR)
    return settings, configured_requests(settings, engine, log=quiet)


def _show(request: dict, as_json: bool) -> None:
    if as_json:
        print_json(request)
        return
    click.echo(
        f"#{request['number']} {request['service']} {request['image']} -> "
        f"{request['environment_group']}: {request['status']}"
        + (" (fast-tracked)" if request.get("fast_track") else "")
    )
    for step in request.get("steps", []):
        who = f" by {step['decided_by']}: {step['reason']}" if step["decided_by"] else ""
        click.echo(f"  {step['position']}. {step['role']:<11} {step['decision']}{who}")
    risk = request.get("risk")
    if risk:
        click.echo(
            f"  risk: {risk['probability']:.1%} chance of failure -> "
            f"{risk['recommendation'].upper()} (model v{risk['model_version']})"
        )
        click.echo("\n".join(advice_lines(risk, "    ")))
    if request.get("fast_track") and not request.get("post_review_at"):
        click.echo("  post-hoc review: DUE (timbel deploy review ID --note ...)")


@click.group()
def deploy() -> None:
    """Deployment requests: request, approve, reject, fast-track, review."""


@deploy.command()
@click.argument("service")
@click.argument("image")
@click.option("--group", required=True, help="dev, staging or prod.")
@click.option("--reason", default="", help="Why this deployment.")
@click.option("--as", "as_user", default=None, help=AS_HELP)
@click.option("--json", "as_json", is_flag=True)
@friendly_errors
def request(service: str, image: str, group: str, reason: str, as_user: str | None, as_json: bool):
    """Ask to roll IMAGE of SERVICE out to an environment group."""
    settings, requests = _requests()
    made = requests.request(as_user or settings.timbel_user, service, image, group, reason)
    if made["status"] == "pending":
        made["risk"] = _assess(requests.engine, settings, made["number"], as_json)
    with requests.engine.connect() as connection:
        made["steps"] = requests.steps(connection, made["id"])
    _show(made, as_json)


def _assess(engine: Any, settings: Any, number: int, as_json: bool) -> dict | None:
    """The risk advisor's assessment, attached to the new request for its approvers; a
    request is never refused because there is no model yet or its image is unknown."""

    try:
        return score_request(engine, settings, str(number))
    except LookupError as error:  # no model trained yet, or the image's commit is unknown
        click.echo(f"risk: not assessed ({error})", err=True)
        return None


def _decision(approve: bool):
    @click.argument("request_ref", metavar="ID")
    @click.option("--reason", required=True, help="Why (required).")
    @click.option("--as", "as_user", default=None, help=AS_HELP)
    @click.option("--json", "as_json", is_flag=True)
    @friendly_errors
    def command(request_ref: str, reason: str, as_user: str | None, as_json: bool) -> None:
        settings, requests = _requests()
        requests.decide(as_user or settings.timbel_user, request_ref, approve, reason)
        _show(requests.status(request_ref), as_json)

    command.__doc__ = f"{'Approve' if approve else 'Reject'} the current step of request ID."
    return command


deploy.command("approve")(_decision(True))
deploy.command("reject")(_decision(False))


@deploy.command("fast-track")
@click.argument("request_ref", metavar="ID")
@click.option("--reason", required=True)
@click.option("--incident", required=True, help="The incident this deployment answers.")
@click.option("--as", "as_user", default=None, help=AS_HELP)
@click.option("--json", "as_json", is_flag=True)
@friendly_errors
def fast_track(request_ref: str, reason: str, incident: str, as_user: str | None, as_json: bool):
    """Approve in an emergency, skipping the chain (every approver is told; a review is due)."""
    settings, requests = _requests()
    requests.fast_track(as_user or settings.timbel_user, request_ref, reason, incident)
    _show(requests.status(request_ref), as_json)


@deploy.command()
@click.argument("request_ref", metavar="ID")
@click.option("--note", required=True)
@click.option("--as", "as_user", default=None, help=AS_HELP)
@friendly_errors
def review(request_ref: str, note: str, as_user: str | None) -> None:
    """Record the mandatory review of a fast-tracked request."""
    settings, requests = _requests()
    requests.review(as_user or settings.timbel_user, request_ref, note)
    click.echo(f"request {request_ref} reviewed")


@deploy.command()
@click.argument("request_ref", metavar="ID")
@click.option("--json", "as_json", is_flag=True)
@friendly_errors
def status(request_ref: str, as_json: bool) -> None:
    """A request and its approval steps."""
    _, requests = _requests()
    requests.expire()
    _show(requests.status(request_ref), as_json)


@deploy.command("list")
@click.option("--status", "state", default=None, help="pending, approved, rejected, expired ...")
@click.option("--limit", type=click.IntRange(min=1), default=20, show_default=True)
@click.option("--json", "as_json", is_flag=True)
@friendly_errors
def list_requests(state: str | None, limit: int, as_json: bool) -> None:
    """The newest requests."""
    from sqlalchemy import select

    if state and state not in REQUEST_STATUSES:
        raise ValueError(f"--status {state!r} is not one of {', '.join(REQUEST_STATUSES)}")
    _, requests = _requests()
    requests.expire()
    query = select(R.__table__).order_by(R.number.desc()).limit(limit)
    if state:
        query = query.where(R.status == state)
    with requests.engine.connect() as connection:
        rows = [dict(r) for r in connection.execute(query).mappings()]
    if as_json:
        print_json(rows)
        return
    print_table(
        rows,
        [
            Column("#", lambda r: f"#{r['number']}", justify="right"),
            Column("STATUS", "status"),
            Column("GROUP", "environment_group"),
            Column("SERVICE", "service"),
            Column("IMAGE", "image"),
            Column("REQUESTED BY", "requested_by"),
            Column("AT", "created_at", when),
        ],
        empty=f"no {state} deployment requests (`timbel deploy list` shows every status)"
        if state
        else "no deployment requests yet: ask for one with `timbel deploy request SERVICE "
        "IMAGE --group dev`",
        footer=plural(len(rows), "request")
        + (f" (the newest {limit}; --limit shows more)" if len(rows) == limit else ""),
    )
