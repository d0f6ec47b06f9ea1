"""Which policy action each route names, read from the routes themselves.

`require(action)` marks its dependency with `policy_action`; `signed_in` marks a route that
needs a valid token and no action (/me). The authorization matrix test walks every route
with `action_of`, and docs/api.md carries `markdown(app)` (a test checks it is current), so
the route table in the docs cannot drift from the code.
"""

from __future__ import annotations

from collections.abc import Iterator

from fastapi import FastAPI
from fastapi.dependencies.models import Dependant
from fastapi.routing import APIRoute, RouteContext, iter_route_contexts

from timbel_dagster.api.deps import signed_in
from timbel_dagster.identity.policy import roles_text, rule

ANY_TOKEN = "(any valid token)"
NO_TOKEN = "(no token)"


def _calls(dependant: Dependant) -> Iterator[object]:
    for sub in dependant.dependencies:
        yield sub.call
        yield from _calls(sub)


def action_of(route: RouteContext) -> str | None:
    """The policy action `route` requires, ANY_TOKEN, or None when it names none."""
    calls = list(_calls(route.dependant))
    for call in calls:
        action = getattr(call, "policy_action", None)
        if action:
            return action
    return ANY_TOKEN if signed_in in calls else None


def api_routes(app: FastAPI, prefix: str = "/api/v1") -> list[RouteContext]:
    """The API's routes under `prefix`, in the order they were mounted. FastAPI mounts an
    included router lazily (app.routes holds the router, not its routes): the contexts are
    its routes with the prefix and the router's dependencies applied."""
    return [
        r for r in iter_route_contexts(app.routes)
        if isinstance(r.original_route, APIRoute) and (r.path or "").startswith(prefix)
    ]  # fmt: skip


def _roles(action: str) -> str:
    if action.startswith("("):
        return "everyone"
    return roles_text(rule(action).roles)  # the policy table's own wording


def markdown(app: FastAPI) -> str:
    """The route table of docs/api.md: route, action, roles, scope, summary."""
    lines = ["| route | action | roles | scope | what |", "|---|---|---|---|---|"]
    for route in api_routes(app):
        action = action_of(route) or NO_TOKEN
        scope = rule(action).scope.value if not action.startswith("(") else "-"
        shown = action if action.startswith("(") else f"`{action}`"
        for method in sorted(route.methods - {"HEAD", "OPTIONS"}):
            lines.append(
                f"| `{method} {route.path}` | {shown} | {_roles(action)} | {scope} "
                f"| {route.summary or ''} |"
            )
    return "\n".join(lines) + "\n"
