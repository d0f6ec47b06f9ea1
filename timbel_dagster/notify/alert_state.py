"""The life of one alert, as a pure function of its state, this tick's observation and time.

pending -> firing after `for`; firing -> resolved after `keep_firing_for` clear. Notices are
rate-limited per alert by `renotify`: at most one per interval, whatever the metric does. A
resolution inside the interval holds its notice back until the interval has passed, and drops
it if the alert fires again first, so a metric flapping across its threshold is one notice
per interval, not two per flap.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
import json
from dataclasses import dataclass

from timbel_dagster.notify.rules import Rule


def fingerprint(rule: str, labels: dict[str, str]) -> str:
    """Stable id of a rule and label set (the de-duplication key)."""
    text = json.dumps([rule, sorted(labels.items())], separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:32]


@dataclass(frozen=True)
class AlertState:
    fingerprint: str
    rule: str
    severity: str
    labels: dict[str, str]
    state: str  # pending | firing | resolved
    value: float | None
    active_since: dt.datetime
    firing_since: dt.datetime | None = None
    last_notified_at: dt.datetime | None = None
    clear_since: dt.datetime | None = None
    resolved_at: dt.datetime | None = None
    notice_pending: bool = False


@dataclass(frozen=True)
class Transition:
    kind: str  # fired | renotified | resolved
    state: AlertState
    at: dt.datetime
    notify: bool
    silenced: bool = False


def _may_notify(state: AlertState, rule: Rule, now: dt.datetime) -> bool:
    return state.last_notified_at is None or now - state.last_notified_at >= rule.renotify


def _notified(state: AlertState, transition_kind: str, now: dt.datetime, silenced: bool):
    """The state after a transition that would notify, unless silenced."""
    if silenced:
        return state, Transition(transition_kind, state, now, notify=False, silenced=True)
    state = dataclasses.replace(state, last_notified_at=now, notice_pending=False)
    return state, Transition(transition_kind, state, now, notify=True)


def step(
    state: AlertState | None,
    rule: Rule,
    labels: dict[str, str],
    value: float | None,
    now: dt.datetime,
    silenced: bool = False,
) -> tuple[AlertState | None, Transition | None]:
    """Advance one alert by one evaluation. `value` None: the condition did not hold."""
    active = value is not None
    if state is None or state.state == "resolved":
        if not active:
            if state is not None and state.notice_pending and _may_notify(state, rule, now):
                return _notified(state, "resolved", now, silenced)
            return state, None
        held_back = state is not None and state.notice_pending
        state = AlertState(
            fingerprint=fingerprint(rule.name, labels),
            rule=rule.name,
            severity=rule.severity,
            labels=labels,
            state="pending",
            value=value,
            active_since=now,
            last_notified_at=state.last_notified_at if state else None,
        )
        if held_back:  # it resolved and fired again inside the interval: still firing
            state = dataclasses.replace(state, state="firing", firing_since=now)
            return state, Transition("fired", state, now, notify=False)
    if state.state == "pending":
        if not active:
            return dataclasses.replace(state, state="resolved", resolved_at=now), None
        state = dataclasses.replace(state, value=value)
        if now - state.active_since < rule.for_:
            return state, None
        state = dataclasses.replace(state, state="firing", firing_since=now)
        if _may_notify(state, rule, now):
            return _notified(state, "fired", now, silenced)
        return state, Transition("fired", state, now, notify=False)
    # firing
    if active:
        state = dataclasses.replace(state, value=value, clear_since=None)
        if not silenced and _may_notify(state, rule, now):
            return _notified(state, "renotified", now, silenced)
        return state, None
    clear_since = state.clear_since or now
    if now - clear_since < rule.keep_firing_for:
        return dataclasses.replace(state, clear_since=clear_since), None
    state = dataclasses.replace(state, state="resolved", resolved_at=now, clear_since=None)
    if _may_notify(state, rule, now):
        return _notified(state, "resolved", now, silenced)
    state = dataclasses.replace(state, notice_pending=not silenced)
    return state, Transition("resolved", state, now, notify=False, silenced=silenced)
