"""One evaluation of every alert rule: observe, advance each alert, store, notify.

Cost is bounded per tick: PromQL rules run as instant queries on a small thread pool (rules
with the same expression share one query), each rule keeps at most `max_series` alerts, and
warehouse facts share one connection. A rule whose query fails keeps its alerts as they were
(missing data never resolves an alert) and is reported; the other rules go on.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import logging
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from timbel_dagster.notify.alert_state import AlertState, Transition, fingerprint, step
from timbel_dagster.notify.rules import Rule

if TYPE_CHECKING:
    from sqlalchemy.engine import Connection, Engine

    from timbel_dagster.notify.dispatch import Dispatcher
    from timbel_dagster.resources.prometheus import PrometheusClient

log = logging.getLogger(__name__)
Observations = dict[str, tuple[dict[str, str], float]]  # fingerprint -> (labels, value)


@dataclass
class TickReport:
    at: dt.datetime
    rules: int = 0
    series: int = 0
    firing: int = 0
    transitions: list[Transition] = field(default_factory=list)
    notifications: int = 0
    errors: dict[str, str] = field(default_factory=dict)
    seconds: float = 0.0


def _state_row(state: AlertState, now: dt.datetime) -> dict[str, Any]:
    return dataclasses.asdict(state) | {"updated_at": now}


def _summary(rule: Rule, labels: dict[str, str], value: float | None) -> str:
    shown = f"{value:g}" if value is not None else "-"
    if not rule.summary:
        where = ", ".join(f"{k}={v}" for k, v in sorted(labels.items()))
        return f"{rule.name}: {where or 'value'} = {shown}"
    from jinja2.sandbox import SandboxedEnvironment

    try:
        return SandboxedEnvironment().from_string(rule.summary).render(labels=labels, value=value)
    except Exception as error:  # a rule's template must never stop the tick
        return f"{rule.name}: {shown} (summary template failed: {error})"


class AlertEvaluator:
    def __init__(
        self,
        engine: Engine,
        prometheus: PrometheusClient | None = None,
        dispatcher: Dispatcher | None = None,
        max_series: int = 1000,
        workers: int = 4,
    ) -> None:
        self.engine, self.prometheus, self.dispatcher = engine, prometheus, dispatcher
        self.max_series, self.workers = max_series, workers

    def _promql(self, rules: list[Rule], now: dt.datetime, report: TickReport) -> dict:
        expressions = sorted({r.expr for r in rules if r.expr})
        if not expressions:
            return {}
        if self.prometheus is None:
            for rule in rules:
                if rule.expr:
                    report.errors[rule.name] = "PromQL rule, but PROMETHEUS_URL is not set"
            return {}

        def run(expr: str) -> tuple[str, Any]:
            try:
                return expr, self.prometheus.instant_query(expr, now)
            except Exception as error:  # reported per rule; other rules go on
                return expr, error

        with ThreadPoolExecutor(max_workers=self.workers) as pool:
            return dict(pool.map(run, expressions))

    def observe(self, rules: list[Rule], now: dt.datetime, report: TickReport) -> dict:
        """Per rule name, its active observations (rules that failed are left out)."""
        from timbel_dagster.notify.facts import FACTS

        by_expr = self._promql(rules, now, report)
        found: dict[str, Observations] = {}
        with self.engine.connect() as connection:
            for rule in rules:
                if rule.name in report.errors:
                    continue
                try:
                    if rule.expr:
                        result = by_expr[rule.expr]
                        if isinstance(result, Exception):
                            raise result
                        observed = result
                    else:
                        observed = [
                            (labels, value)
                            for labels, value in FACTS[rule.fact](connection, rule.params, now)
                            if rule.threshold is None or rule.threshold.holds(value)
                        ]
                except Exception as error:
                    report.errors[rule.name] = f"{type(error).__name__}: {error}"
                    continue
                if len(observed) > self.max_series:
                    report.errors[rule.name] = (
                        f"{len(observed)} series; only the first {self.max_series} are alerts"
                    )
                    observed = observed[: self.max_series]
                report.series += len(observed)
                alerts: Observations = {}
                for labels, value in observed:
                    labels = {k: v for k, v in labels.items() if k != "__name__"} | rule.labels
                    alerts[fingerprint(rule.name, labels)] = (labels, value)
                found[rule.name] = alerts
        return found

    def tick(self, rules: list[Rule], now: dt.datetime | None = None) -> TickReport:
        """Evaluate `rules` once at `now`, store what changed, send what is due."""
        started = time.perf_counter()
        now = (now or dt.datetime.now(dt.UTC)).astimezone(dt.UTC)
        rules = [r for r in rules if r.enabled]
        report = TickReport(at=now, rules=len(rules))
        observed = self.observe(rules, now, report)
        with self.engine.connect() as connection:
            states = _load_states(connection, [r.name for r in rules], now, rules)
            silences = _active_silences(connection, now)
        changed: list[AlertState] = []
        for rule in rules:
            if rule.name not in observed:
                continue  # failed this tick: its alerts stay as they were
            alerts = observed[rule.name]
            mine = {fp for fp, s in states.items() if s.rule == rule.name}
            for fp in sorted(mine | set(alerts)):
                labels, value = alerts.get(fp, (states[fp].labels if fp in states else {}, None))
                before = states.get(fp)
                silenced = any(_matches(m, rule.name, labels) for m in silences)
                after, transition = step(before, rule, labels, value, now, silenced)
                if after is not None and after != before:
                    changed.append(after)
                if transition:
                    report.transitions.append(transition)
            report.firing += sum(
                1 for fp in alerts if (states.get(fp) and states[fp].state == "firing")
            )
        _store(self.engine, changed, report.transitions, {r.name: r for r in rules}, now)
        report.notifications = self._notify(report.transitions, {r.name: r for r in rules})
        report.seconds = round(time.perf_counter() - started, 3)
        return report

    def _notify(self, transitions: list[Transition], rules: dict[str, Rule]) -> int:
        from timbel_dagster.notify.messages import Message

        due = [t for t in transitions if t.notify]
        if not due or self.dispatcher is None:
            return 0
        sent = 0
        for t in due:
            rule, state = rules[t.state.rule], t.state
            event = "alert_resolved" if t.kind == "resolved" else "alert_fired"
            message = Message(
                event=event,
                key=f"alert:{state.fingerprint}:{t.kind}:{t.at.isoformat()}",
                title=_summary(rule, state.labels, state.value),
                severity=rule.severity,
                context={"rule": rule.name, "value": state.value, **state.labels},
            )
            try:
                results = self.dispatcher.send(message, rule=rule.name)
            except Exception as error:  # the alert state is stored; notices are best effort
                log.warning(f"alert {rule.name}: notification failed: {error}")
                continue
            sent += sum(1 for r in results if getattr(r, "status", None) == "sent")
        return sent


def _matches(matchers: dict[str, Any], rule: str, labels: dict[str, str]) -> bool:
    return all(
        (rule if key == "alertname" else labels.get(key)) == value
        for key, value in matchers.items()
    )


def _load_states(
    connection: Connection, names: list[str], now: dt.datetime, rules: list[Rule]
) -> dict[str, AlertState]:
    """Alerts of these rules that are open, or resolved recently enough to still debounce."""
    from sqlalchemy import or_, select

    from timbel_dagster.warehouse.models_notify import Alert

    if not names:
        return {}
    longest = max(r.renotify for r in rules)
    query = (
        select(Alert.__table__)
        .where(Alert.rule.in_(names))
        .where(
            or_(
                Alert.state != "resolved",
                Alert.notice_pending,
                Alert.last_notified_at >= now - longest,
            )
        )
    )
    fields = [f.name for f in dataclasses.fields(AlertState)]
    return {
        row["fingerprint"]: AlertState(**{name: row[name] for name in fields})
        for row in connection.execute(query).mappings()
    }


def _active_silences(connection: Connection, now: dt.datetime) -> list[dict[str, Any]]:
    from sqlalchemy import select

    from timbel_dagster.warehouse.models_notify import Silence

    query = select(Silence.matchers).where(Silence.starts_at <= now, Silence.ends_at > now)
    return list(connection.execute(query).scalars())


def _store(
    engine: Engine,
    states: list[AlertState],
    transitions: list[Transition],
    rules: dict[str, Rule],
    now: dt.datetime,
) -> None:
    """The changed alerts and this tick's events, in one transaction."""
    from sqlalchemy import insert

    from timbel_dagster.warehouse.models_notify import Alert, AlertEvent
    from timbel_dagster.warehouse.upsert import bulk_upsert

    with engine.begin() as connection:
        if states:
            bulk_upsert(
                connection, Alert.__table__, [_state_row(s, now) for s in states], ("fingerprint",)
            )
        if transitions:
            connection.execute(
                insert(AlertEvent),
                [
                    {
                        "fingerprint": t.state.fingerprint,
                        "rule": t.state.rule,
                        "severity": t.state.severity,
                        "kind": t.kind,
                        "at": t.at,
                        "value": t.state.value,
                        "labels": t.state.labels,
                        "summary": _summary(rules[t.state.rule], t.state.labels, t.state.value),
                        "silenced": t.silenced,
                        "notified": t.notify,
                    }
                    for t in transitions
                ],
            )
