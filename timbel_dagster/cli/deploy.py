"""`timbel deploy`: deployment requests and their approvals, and asking for a rollback."""

from __future__ import annotations

import click

from timbel_dagster.cli.common import friendly_errors, print_json, writable_engine
from timbel_dagster.cli.risk import advice_lines
from timbel_dagster.cli.tables import Column, plural, print_table, when
from timbel_dagster.deploy import lookup
from timbel_dagster.deploy.launch import grant_rollback
from timbel_dagster.deploy.risk_view import advice
from timbel_dagster.deploy.service import request_deployment, requests_from_settings
from timbel_dagster.identity.authorize import may_role
from timbel_dagster.identity.principal import load_principal
from timbel_dagster.warehouse.audit.chain import append_event

AS_HELP = "Act as this user (default TIMBEL_USER); must exist in the users table."


def _requests():
    settings, engine = writable_engine()
    return settings, requests_from_settings(settings, engine)


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
        click.echo(f"  risk: {advice(risk)}")
        click.echo("\n".join(advice_lines(risk, "    ")))
    if request.get("fast_track") and not request.get("post_review_at"):
        click.echo("  post-hoc review: DUE (timbel deploy review ID --note ...)")


@click.group()
def deploy() -> None:
    """Deployment requests: request, approve, reject, fast-track, review; rollbacks."""


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
    made = request_deployment(
        requests, settings, as_user or settings.timbel_user, service, image, group, reason
    )
    note = made.pop("risk_note", None)
    if note:
        click.echo(f"risk: {note}", err=True)
    _show(made, as_json)


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
    _, requests = _requests()
    requests.expire()
    with requests.engine.connect() as connection:
        rows = lookup.list_requests(connection, state, limit)
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


@deploy.command()
@click.argument("service")
@click.option("--cluster", required=True, help="The cluster to roll back in.")
@click.option("--reason", required=True, help="Why (required, audited).")
@click.option(
    "--request",
    "request_number",
    type=click.IntRange(min=1),
    default=None,
    help="The deployment request to roll back (default: the newest in the cluster).",
)
@click.option(
    "--to",
    "to_revision",
    default=None,
    metavar="REVISION",
    help="Go back to this past deployment: a request number, or its image, tag or "
    "digest (default: the last known-good image).",
)
@click.option("--dry-run", is_flag=True, help="Record what it would do, change nothing.")
@click.option("--as", "as_user", default=None, help=AS_HELP)
@click.option("--json", "as_json", is_flag=True)
@friendly_errors
def rollback(
    service: str,
    cluster: str,
    reason: str,
    request_number: int | None,
    to_revision: str | None,
    dry_run: bool,
    as_user: str | None,
    as_json: bool,
) -> None:
    """Ask for a rollback of SERVICE in --cluster, as POST /api/v1/rollbacks does: a run
    grant (operations or admin) that the Dagster daemon's run_grant_sensor launches as the
    `rollback` job within 30 s."""
    settings, engine = writable_engine()
    actor = as_user or settings.timbel_user
    with engine.connect() as connection:
        decision = may_role(load_principal(connection, actor), "rollbacks.request")
    if not decision.allowed:
        with engine.begin() as connection:
            append_event(connection, actor=actor, action="rollbacks.request.refused",
                         target=f"rollback {service} {cluster}",
                         details={"error": decision.reason})  # fmt: skip
        raise ValueError(decision.reason)
    granted = grant_rollback(
        engine, actor, service, cluster, reason,
        request=request_number, to_revision=to_revision, dry_run=dry_run,
    )  # fmt: skip
    if as_json:
        print_json(granted)
        return
    config = granted["run_config"]["ops"]["roll_back_deployment"]["config"]
    to = (f"request #{config['to_request']} ({config['to_image']})" if "to_request" in config
          else "its last known-good image")  # fmt: skip
    click.echo(
        f"rollback of {service} in {cluster} (request #{granted['request']}) to {to} granted: "
        f"grant {granted['grant']}; the rollback job runs within 30 s"
        + (" (dry run)" if dry_run else "")
    )
