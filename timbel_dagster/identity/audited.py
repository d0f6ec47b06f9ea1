"""Refused changes are audited too: `<action>.refused`, written after the refused change's
transaction rolled back, as `warehouse.people.users` does for user changes."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, TypeVar

from timbel_dagster.warehouse.audit.chain import append_event
from timbel_dagster.warehouse.people.users import UserRefusedError

if TYPE_CHECKING:
    from sqlalchemy.engine import Engine

T = TypeVar("T")


def audit_refusal(engine: Engine, actor: str, action: str, target: str, error: Exception) -> None:
    with engine.begin() as connection:
        append_event(
            connection,
            actor=actor[:256],
            action=f"{action}.refused",
            target=target[:512],
            details={"error": str(error), "error_type": type(error).__name__},
        )


def guarded(engine: Engine, actor: str, action: str, target: str, change: Callable[[], T]) -> T:
    """Run `change`; when it is refused (a ValueError or an unknown or disabled user), audit
    the refusal and raise it again."""
    try:
        return change()
    except (ValueError, UserRefusedError) as error:
        audit_refusal(engine, actor, action, target, error)
        raise
