"""One evaluation of every alert rule: observe, advance each alert, store, notify.

Cost is bounded per tick: PromQL rules run as instant queries on a small thread pool (rules
with the same expression share one query), each rule keeps at most `max_series` alerts, and
warehouse facts share one connection. A rule whose query fails keeps its alerts as they were
(missing data never resolves an alert) and is reported; the other rules go on.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import functools
import logging
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from timbel_dagster.notify.alert_state import AlertState, Transition, fingerprint, step
from timbel_dagster.notify.facts import FACTS
from timbel_dagster.notify.messages import Message
from timbel_dagster.notify.rules import Rule
from timbel_dagster.notify.staleness import INSTANCE_FACTS, MaterializationClock
from timbel_dagster.security.template_sandbox import BoundedSandbox, Limits, TemplateRefused
from timbel_dagster.warehouse.schema.notify import Alert, AlertEvent, Silence
from timbel_dagster.warehouse.store.upsert import bulk_upsert

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


_FIELDS = tuple(f.name for f in dataclasses.fields(AlertState))
GROUP_ABOVE = 5  # more notices than this for one rule in one tick go out as one message


def _state_row(state: AlertState, now: dt.datetime) -> dict[str, Any]:
    # Not dataclasses.asdict: it deep-copies every label dict, which shows at 10,000 alerts.
    return {name: getattr(state, name) for name in _FIELDS} | {"updated_at": now}


@dataclass
class _SummaryTemplate:
    template: Any
    refused: str | None = None  # why the sandbox refused it once: not rendered again


@functools.cache
def _summary_sandbox() -> Any:
    """Summaries come from rules anyone with write access to the warehouse or the rules file
    wrote: the bounded sandbox, with limits that fit one line (a tick renders many)."""

    return BoundedSandbox(limits=Limits(steps=100_000, output=10_000, seconds=1.0))


@functools.lru_cache(maxsize=1024)
def _template(text: str) -> _SummaryTemplate:
    """A rule's summary template, compiled once (compiling costs more than rendering)."""
    template = _summary_sandbox().from_string(text)
    template.name = "summary"
    return _SummaryTemplate(template)


def _summary(rule: Rule, labels: dict[str, str], value: float | None) -> str:
    shown = f"{value:g}" if value is not None else "-"
    if not rule.summary:
        where = ", ".join(f"{k}={v}" for k, v in sorted(labels.items()))
        return f"{rule.name}: {where or 'value'} = {shown}"
    try:
        compiled = _template(rule.summary)
        if compiled.refused is None:
            return compiled.template.render(labels=labels, value=value)
        error: Exception | str = compiled.refused
    except TemplateRefused as refused:  # a limit: the next alert of this rule would hit it too
        compiled.refused = error = str(refused)
    except Exception as failed:  # a rule's template must never stop the tick
        error = failed
    return f"{rule.name}: {shown} (summary template failed: {error})"


def _worth_writing(before: AlertState | None, after: AlertState | None) -> bool:
    """A changed state is written; a new value alone is not (the stored value is the one of
    the alert's last transition), so a steady tick over 10,000 alerts writes nothing."""
    if after is None or after == before:
        return False
    return before is None or dataclasses.replace(after, value=before.value) != before


class AlertEvaluator:
    def __init__(
        self,
        engine: Engine,
        prometheus: PrometheusClient | None = None,
        dispatcher: Dispatcher | None = None,
        max_series: int = 1000,
        workers: int = 4,
        clock: MaterializationClock | None = None,
    ) -> None:
        """`clock` reads the Dagster instance for the facts that need it (`ingestion_stale`);
        without it those rules are reported as errors, the others go on."""
        self.engine, self.prometheus, self.dispatcher = engine, prometheus, dispatcher
        self.max_series, self.workers, self.clock = max_series, workers, clock

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
                    elif rule.fact in INSTANCE_FACTS:
                        observed = [
                            (labels, value)
                            for labels, value in INSTANCE_FACTS[rule.fact](
                                self.clock, rule.params, now
                            )
                            if rule.threshold is None or rule.threshold.holds(value)
                        ]
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
        by_rule: dict[str, set[str]] = {}
        for fp, state in states.items():
            by_rule.setdefault(state.rule, set()).add(fp)
        changed: list[AlertState] = []
        for rule in rules:
            if rule.name not in observed:
                continue  # failed this tick: its alerts stay as they were
            alerts = observed[rule.name]
            for fp in sorted(by_rule.get(rule.name, set()) | set(alerts)):
                labels, value = alerts.get(fp, (states[fp].labels if fp in states else {}, None))
                before = states.get(fp)
                silenced = bool(silences) and any(_matches(m, rule.name, labels) for m in silences)
                after, transition = step(before, rule, labels, value, now, silenced)
                if _worth_writing(before, after):
                    changed.append(after)
                if transition:
                    report.transitions.append(transition)
                if after is not None and after.state == "firing":
                    report.firing += 1
        rules_by_name = {r.name: r for r in rules}
        summaries = {
            id(t): _summary(rules_by_name[t.state.rule], t.state.labels, t.state.value)
            for t in report.transitions
        }
        _store(self.engine, changed, report.transitions, summaries, now)
        report.notifications = self._notify(report.transitions, rules_by_name, summaries)
        report.seconds = round(time.perf_counter() - started, 3)
        return report

    def _notify(
        self, transitions: list[Transition], rules: dict[str, Rule], summaries: dict[int, str]
    ) -> int:
        """Send the notices due: one message per alert, or one per rule and kind when a rule
        has more than GROUP_ABOVE notices in this tick (a storm is one message, not a
        thousand webhook posts)."""

        if self.dispatcher is None:
            return 0
        groups: dict[tuple[str, str], list[Transition]] = {}
        for t in transitions:
            if t.notify:
                groups.setdefault((t.state.rule, t.kind), []).append(t)
        messages = []
        for (name, kind), members in sorted(groups.items()):
            rule = rules[name]
            event = "alert_resolved" if kind == "resolved" else "alert_fired"
            if len(members) <= GROUP_ABOVE:
                messages += [
                    (
                        rule,
                        Message(
                            event=event,
                            key=f"alert:{t.state.fingerprint}:{kind}:{t.at.isoformat()}",
                            title=summaries[id(t)],
                            severity=rule.severity,
                            context={"rule": name, "value": t.state.value, **t.state.labels},
                        ),
                    )
                    for t in members
                ]
                continue
            shown = "; ".join(summaries[id(t)] for t in members[:10])
            messages.append(
                (
                    rule,
                    Message(
                        event=event,
                        key=f"alert-group:{name}:{kind}:{members[0].at.isoformat()}",
                        title=f"{name}: {len(members)} alerts {kind}",
                        severity=rule.severity,
                        context={
                            "rule": name,
                            "alerts": len(members),
                            "first": shown + ("; ..." if len(members) > 10 else ""),
                        },
                    ),
                )
            )
        sent = 0
        for rule, message in messages:
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

    query = select(Silence.matchers).where(Silence.starts_at <= now, Silence.ends_at > now)
    return list(connection.execute(query).scalars())


def _store(
    engine: Engine,
    states: list[AlertState],
    transitions: list[Transition],
    summaries: dict[int, str],
    now: dt.datetime,
) -> None:
    """The changed alerts and this tick's events, in one transaction."""
    from sqlalchemy import insert

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
                        "summary": summaries[id(t)],
                        "silenced": t.silenced,
                        "notified": t.notify,
                    }
                    for t in transitions
                ],
            )
