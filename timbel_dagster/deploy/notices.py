"""Approval requests as notifications: the people whose turn it is are mentioned on Slack
and get the e-mail if they subscribed to `approval_requested`."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from timbel_dagster.notify.messages import Message

if TYPE_CHECKING:
    from timbel_dagster.notify.dispatch import Dispatcher


def approval_notifier(dispatcher: Dispatcher) -> Callable[[dict[str, Any], str, list[str]], None]:
    def notify(request: dict[str, Any], event: str, people: list[str]) -> None:
        emergency = bool(request.get("fast_track"))
        title = (
            f"FAST-TRACKED: {request['service']} {request['image']} to "
            f"{request['environment_group']} (incident {request.get('incident_ref')}); "
            "review it after the fact"
            if emergency
            else f"Approve deployment #{request['number']}: {request['service']} "
            f"{request['image']} to {request['environment_group']}"
        )
        dispatcher.send(
            Message(
                event=event,
                key=f"approval:{request['id']}:{'fast-track' if emergency else ','.join(people)}",
                title=title,
                severity="high" if emergency or request["environment_group"] == "prod" else "info",
                context={
                    "request": f"#{request['number']}",
                    "service": request["service"],
                    "image": request["image"],
                    "group": request["environment_group"],
                    "requested_by": request["requested_by"],
                    "reason": request.get("reason") or "-",
                    "approve": f"timbel deploy approve {request['number']} --reason ...",
                },
                mentions=tuple(people),
            )
        )

    return notify
