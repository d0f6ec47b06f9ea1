"""/api/v1/alerts: current alerts, their events, alert rules and silences; the functions of
`timbel alerts list | rules | silence`."""

from __future__ import annotations

import uuid
from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Path, Query, Request, Response
from sqlalchemy.engine import Engine

from timbel_dagster.api.deps import require, warehouse_engine
from timbel_dagster.api.errors import ERRORS_READ, ApiError, problems
from timbel_dagster.api.guard import invalid, not_found
from timbel_dagster.api.schemas.alerts import (
    AlertEventOut,
    AlertEventPage,
    AlertList,
    AlertOut,
    RuleIn,
    RuleList,
    RuleOut,
    SilenceIn,
    SilenceList,
    SilenceOut,
)
from timbel_dagster.identity.principal import Principal
from timbel_dagster.notify import alert_store, rule_store
from timbel_dagster.notify.facts import FACTS
from timbel_dagster.notify.rules import RuleError, build_rule, parse_duration
from timbel_dagster.warehouse.schema.notify import ALERT_EVENT_KINDS, ALERT_STATES

MAX_LIMIT = 200
ERRORS_WRITE = (400, *ERRORS_READ)
State = Literal[(*ALERT_STATES, "all")]  # type: ignore[valid-type]
Kind = Literal[ALERT_EVENT_KINDS]  # type: ignore[valid-type]
RuleName = Annotated[str, Path(max_length=128, description="The rule's name.")]

router = APIRouter(tags=["alerts"])


@router.get(
    "/alerts",
    summary="Current alerts (firing by default)",
    response_model=AlertList,
    responses=problems(*ERRORS_READ),
)
def alerts(
    _who: Annotated[Principal, Depends(require("alerts.read"))],
    warehouse: Annotated[Engine, Depends(warehouse_engine)],
    state: Annotated[State, Query(description="`all` for every state.")] = "firing",
) -> AlertList:
    """The current alerts in `state`, by rule then start: what `timbel alerts list` shows."""
    rows = alert_store.list_alerts(warehouse, None if state == "all" else state)
    return AlertList(items=[AlertOut(**row) for row in rows])


@router.get(
    "/alerts/events",
    summary="Alert events (fired, renotified, resolved), newest first",
    response_model=AlertEventPage,
    responses=problems(*ERRORS_READ),
)
def alert_events(
    _who: Annotated[Principal, Depends(require("alerts.read"))],
    warehouse: Annotated[Engine, Depends(warehouse_engine)],
    kind: Annotated[Kind | None, Query()] = None,
    rule: Annotated[str | None, Query(max_length=128)] = None,
    limit: Annotated[int, Query(ge=1, le=MAX_LIMIT, description="Rows per page.")] = 50,
    cursor: Annotated[
        str | None,
        Query(pattern=r"^[0-9]{1,18}$", description="`next_cursor` of the previous page."),
    ] = None,
) -> AlertEventPage:
    """The history of every alert: when it fired, was notified again, or resolved, and
    whether a silence or the re-notify interval held the notice back."""
    rows = alert_store.alert_events(
        warehouse, kind=kind, rule=rule, before=int(cursor) if cursor else None, limit=limit + 1
    )
    page = rows[:limit]
    more = len(rows) > limit
    return AlertEventPage(
        items=[AlertEventOut(**row) for row in page],
        next_cursor=str(page[-1]["id"]) if more else None,
    )


@router.get(
    "/alerts/rules",
    summary="Alert rules: the rules file's and the warehouse's",
    response_model=RuleList,
    responses=problems(*ERRORS_READ),
)
def rules(
    request: Request,
    _who: Annotated[Principal, Depends(require("alerts.read"))],
    warehouse: Annotated[Engine, Depends(warehouse_engine)],
) -> RuleList:
    """Every rule the alert sensor evaluates, as `timbel alerts rules list` shows them; a
    warehouse rule that no longer validates is reported in `errors`."""
    path = rule_store.rules_file(request.app.state.settings)
    found, errors = rule_store.all_rules(warehouse, path)
    return RuleList(
        items=[RuleOut(**rule_store.rule_summary(r), source=rule_store.source(r)) for r in found],
        errors=errors,
    )


def _save(warehouse: Engine, who: Principal, body: RuleIn, *, replace: bool) -> RuleOut:
    definition = body.model_dump(mode="json")
    try:
        name = rule_store.save_rule(warehouse, definition, "api", who.user, replace=replace)
        saved = build_rule(definition, f"{rule_store.ORIGIN}:{name}", set(FACTS))
    except rule_store.RuleExistsError as error:
        raise ApiError(409, str(error), kind="conflict") from None
    except RuleError as error:
        raise invalid(("body",), str(error)) from None
    return RuleOut(**rule_store.rule_summary(saved), source=rule_store.ORIGIN)


@router.post(
    "/alerts/rules",
    summary="Store an alert rule in the warehouse",
    status_code=201,
    response_model=RuleOut,
    responses=problems(*ERRORS_WRITE, 409),
)
def add_rule(
    who: Annotated[Principal, Depends(require("alerts.rules.write"))],
    warehouse: Annotated[Engine, Depends(warehouse_engine)],
    body: RuleIn,
) -> RuleOut:
    """Validate the rule and store it, as `timbel alerts rules add` does for each rule of a
    file; audited `alert_rules.save`. A rule of that name in the warehouse is a 409 (PUT
    replaces one), so two people adding a rule do not overwrite each other."""
    return _save(warehouse, who, body, replace=False)


@router.put(
    "/alerts/rules/{name}",
    summary="Replace (or create) the warehouse's alert rule NAME",
    response_model=RuleOut,
    responses=problems(*ERRORS_WRITE),
)
def put_rule(
    who: Annotated[Principal, Depends(require("alerts.rules.write"))],
    warehouse: Annotated[Engine, Depends(warehouse_engine)],
    name: RuleName,
    body: RuleIn,
) -> RuleOut:
    """The body's `name` must be the path's. Rules of the rules file are changed in the file
    (under review in git), not here."""
    if body.name != name:
        raise invalid(("body", "name"), f"the body names rule {body.name!r}, the path {name!r}")
    return _save(warehouse, who, body, replace=True)


@router.delete(
    "/alerts/rules/{name}",
    summary="Delete the warehouse's alert rule NAME",
    status_code=204,
    response_class=Response,
    responses=problems(*ERRORS_READ, 404),
)
def delete_rule(
    who: Annotated[Principal, Depends(require("alerts.rules.write"))],
    warehouse: Annotated[Engine, Depends(warehouse_engine)],
    name: RuleName,
) -> Response:
    """Audited `alert_rules.delete`; 404 when the warehouse has no rule of that name."""
    try:
        rule_store.delete_rule(warehouse, name, who.user)
    except LookupError as error:
        raise not_found(str(error)) from None
    return Response(status_code=204)


@router.get(
    "/alerts/silences",
    summary="Silences in force (or all)",
    response_model=SilenceList,
    responses=problems(*ERRORS_READ),
)
def list_silences(
    _who: Annotated[Principal, Depends(require("alerts.read"))],
    warehouse: Annotated[Engine, Depends(warehouse_engine)],
    include_expired: Annotated[
        bool, Query(alias="all", description="Also the silences that have ended.")
    ] = False,
) -> SilenceList:
    """Silences, newest first, each with who made it and why."""
    rows = alert_store.list_silences(warehouse, include_expired=include_expired)
    return SilenceList(items=[SilenceOut(**row) for row in rows])


@router.post(
    "/alerts/silences",
    summary="Silence alerts whose labels match",
    status_code=201,
    response_model=SilenceOut,
    responses=problems(*ERRORS_WRITE),
)
def add_silence(
    who: Annotated[Principal, Depends(require("alerts.silence"))],
    warehouse: Annotated[Engine, Depends(warehouse_engine)],
    body: SilenceIn,
) -> SilenceOut:
    """Mute notices of alerts whose labels match every matcher, for `duration`; the silence
    and its audit event (`alerts.silence`) name the token's user."""
    try:
        length = parse_duration(body.duration)
    except ValueError as error:
        raise invalid(("body", "duration"), str(error)) from None
    try:
        made = alert_store.create_silence(warehouse, who.user, body.matchers, length, body.comment)
    except ValueError as error:
        raise invalid(("body",), str(error)) from None
    return SilenceOut(**made)


@router.delete(
    "/alerts/silences/{silence_id}",
    summary="End a silence now",
    status_code=204,
    response_class=Response,
    responses=problems(*ERRORS_READ, 404),
)
def end_silence(
    who: Annotated[Principal, Depends(require("alerts.silence"))],
    warehouse: Annotated[Engine, Depends(warehouse_engine)],
    silence_id: uuid.UUID,
) -> Response:
    """The silence's row stays (ending now), so who muted what is kept; ending an ended
    silence changes nothing. Audited `alerts.unsilence`."""
    try:
        alert_store.expire_silence(warehouse, who.user, silence_id)
    except alert_store.SilenceNotFoundError as error:
        raise not_found(str(error)) from None
    return Response(status_code=204)
