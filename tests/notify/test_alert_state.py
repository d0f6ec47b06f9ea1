"""The alert state machine: for-duration, re-notify debounce, resolution and flapping."""

from __future__ import annotations

import datetime as dt
import itertools

import pytest

from timbel_dagster.notify.alert_state import AlertState, fingerprint, step
from timbel_dagster.notify.rules import Rule

T0 = dt.datetime(2026, 11, 1, 12, tzinfo=dt.UTC)
MINUTE = dt.timedelta(minutes=1)
LABELS = {"namespace": "shop"}


def _rule(**kw) -> Rule:
    return Rule(name="cpu", severity="critical", expr="up", **kw)


def _run(rule: Rule, values: list[float | None], silenced: bool = False):
    """Feed one observation per minute; return the transitions as (minute, kind, notify)."""
    state: AlertState | None = None
    seen = []
    for minute, value in enumerate(values):
        state, transition = step(state, rule, LABELS, value, T0 + minute * MINUTE, silenced)
        if transition:
            seen.append((minute, transition.kind, transition.notify))
    return seen, state


def test_fires_only_after_the_for_duration() -> None:
    seen, state = _run(_rule(for_=10 * MINUTE), [1.0] * 12)
    assert seen == [(10, "fired", True)]
    assert state.state == "firing" and state.firing_since == T0 + 10 * MINUTE


def test_a_short_breach_never_fires() -> None:
    seen, state = _run(_rule(for_=10 * MINUTE), [1.0] * 5 + [None] + [1.0] * 5)
    assert seen == []
    assert state.state == "pending"  # pending again since minute 6


def test_renotifies_each_interval_and_resolves_with_a_notice() -> None:
    seen, state = _run(_rule(renotify=30 * MINUTE), [1.0] * 61)
    assert seen == [(0, "fired", True), (30, "renotified", True), (60, "renotified", True)]
    assert state.state == "firing"
    seen, state = _run(_rule(renotify=30 * MINUTE), [1.0] * 30 + [None])
    assert seen == [(0, "fired", True), (30, "resolved", True)]
    assert state.state == "resolved"


def test_keep_firing_for_holds_the_resolution() -> None:
    seen, _ = _run(_rule(keep_firing_for=5 * MINUTE, renotify=MINUTE), [1.0] + [None] * 7)
    assert seen == [(0, "fired", True), (6, "resolved", True)]


def test_a_flapping_metric_is_one_notice_per_interval() -> None:
    window = 60
    flapping = [1.0 if minute % 2 == 0 else None for minute in range(3 * window)]
    seen, _ = _run(_rule(renotify=window * MINUTE), flapping)
    notices = [minute for minute, _, notify in seen if notify]
    assert notices  # it did tell someone
    for first, second in itertools.pairwise(notices):
        assert second - first >= window
    assert len(notices) <= 3


def test_a_held_back_resolution_goes_out_after_the_interval() -> None:
    values = [1.0, 1.0] + [None] * 40
    seen, state = _run(_rule(renotify=30 * MINUTE), values)
    assert seen == [(0, "fired", True), (2, "resolved", False), (30, "resolved", True)]
    assert state.notice_pending is False


def test_silenced_alerts_are_recorded_but_not_sent() -> None:
    seen, state = _run(_rule(renotify=10 * MINUTE), [1.0] * 25, silenced=True)
    assert seen == [(0, "fired", False)]  # once: no event every tick while silenced
    assert state.last_notified_at is None


def test_healthy_windows_are_silent() -> None:
    seen, state = _run(_rule(), [None] * 1000)
    assert seen == [] and state is None


@pytest.mark.parametrize(
    ("a", "b", "same"),
    [
        ({"x": "1", "y": "2"}, {"y": "2", "x": "1"}, True),
        ({"x": "1"}, {"x": "2"}, False),
        ({}, {"x": ""}, False),
    ],
)
def test_fingerprints(a: dict, b: dict, same: bool) -> None:
    assert (fingerprint("r", a) == fingerprint("r", b)) is same
    assert fingerprint("r", a) != fingerprint("s", a)
