"""`timbel demo`: the whole platform end to end on the sample organisation.

Creates the warehouse and a Dagster instance under TIMBEL_HOME, materializes every asset of
the code location through Dagster (in process, one run per asset node in dependency order, so
progress shows as it goes and every run is in the Dagster UI afterwards, named after the job of
the node's domain: `delivery_ingestion`, `cluster_metrics`, `ml_retrain`, ...), and reports.
"""

from __future__ import annotations

import datetime as dt
import graphlib
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from timbel_dagster.bindings.warehouse import WarehouseResource
from timbel_dagster.definitions import build_definitions, history_start
from timbel_dagster.deploy.dora import recent_dora
from timbel_dagster.jobs.definitions import job_for
from timbel_dagster.metrics_collect import cluster_range_tags, register_clusters, window_text
from timbel_dagster.partitions import cluster_hourly, daily, range_tags
from timbel_dagster.resources.sources import DeliverySourcesResource
from timbel_dagster.runs import QUIET, open_instance, rows_written, run_warnings
from timbel_dagster.settings import Settings, display_url
from timbel_dagster.slo.spec import SAMPLE_SLO_FILE
from timbel_dagster.warehouse import migrate
from timbel_dagster.warehouse.engine import get_engine
from timbel_dagster.warehouse.read import frames
from timbel_dagster.warehouse.schema.cluster import ClusterCost as C
from timbel_dagster.warehouse.schema.ml import BottleneckFinding, CostForecast, MlModel
from timbel_dagster.warehouse.schema.models import PipelineExecution as E
from timbel_dagster.warehouse.schema.notify import Alert
from timbel_dagster.warehouse.schema.security import VulnerabilityFinding as V


@dataclass
class DemoReport:
    database: str
    dagster_home: str
    runs: list[dict[str, Any]] = field(default_factory=list)
    executions: dict[str, Any] = field(default_factory=dict)
    dora: dict[str, Any] | None = None
    cluster_cost: list[dict[str, Any]] = field(default_factory=list)
    alerts: dict[str, int] = field(default_factory=dict)
    insights: dict[str, Any] = field(default_factory=dict)


def asset_nodes_in_order(assets: list[Any]) -> list[Any]:
    """Asset definitions sorted so that each comes after everything it depends on."""
    owner = {key: node for node in assets for key in node.keys}
    graph = graphlib.TopologicalSorter()
    for index, node in enumerate(assets):
        upstream = {assets.index(owner[k]) for k in node.dependency_keys if k in owner}
        graph.add(index, *(u for u in upstream if u != index))
    return [assets[i] for i in graph.static_order()]


def _sample_days(sources: Any) -> tuple[str, str]:
    """The first and last daily partition of the sample's history (never past today)."""
    since, until = sources.window()
    last = min(until.date() - dt.timedelta(days=1), dt.datetime.now(dt.UTC).date())
    return since.date().isoformat(), last.isoformat()


def _execution_summary(connection: Any) -> dict[str, Any]:
    from sqlalchemy import func, select

    by_status = dict(connection.execute(select(E.status, func.count()).group_by(E.status)).all())
    sources = dict(connection.execute(select(E.source, func.count()).group_by(E.source)).all())
    finished = sum(by_status.get(s, 0) for s in ("success", "failed", "aborted"))
    return {
        "total": sum(by_status.values()),
        "by_status": by_status,
        "by_source": sources,
        "success_rate": round(by_status.get("success", 0) / finished, 4) if finished else None,
    }


def _dora_last_weeks(connection: Any, weeks: int = 4) -> dict[str, Any] | None:
    """The organisation's DORA summary over the last `weeks` weeks of the history (what
    `timbel dora` prints below its weekly table)."""

    recent = recent_dora(
        frames.deployments_frame(connection),
        frames.shipped_commits_frame(connection),
        frames.incidents_frame(connection),
        weeks,
    )
    if recent is None or not recent["summary"]:
        return None
    return recent["summary"] | {
        "since": recent["since"].isoformat(),
        "until": recent["until"].isoformat(),
    }


DEMO_METRIC_HOURS = 24


def _cluster_hours(
    instance: Any, sources: Any
) -> tuple[list[str], tuple[dt.datetime, dt.datetime]]:
    """The sample clusters (registered as partitions) and the 24 hours that end with the
    sample's last day, or with the last completed hour if that day is today."""
    now = dt.datetime.now(dt.UTC).replace(minute=0, second=0, microsecond=0)
    day_after = dt.datetime.combine(sources.sample().end_date, dt.time(), dt.UTC)
    end = min(now, day_after + dt.timedelta(days=1))
    clusters = register_clusters(instance, sources.metrics_source().cluster_names())
    return clusters, (end - dt.timedelta(hours=DEMO_METRIC_HOURS), end)


SAMPLE_RULES = Path(__file__).parent / "notify" / "sample_rules.yaml"


def _node_config(
    node: Any, settings: Settings, hours: tuple[dt.datetime, dt.datetime]
) -> dict[str, Any]:
    """The demo evaluates the sample's alert rules unless TIMBEL_ALERT_RULES_FILE says, the
    sample's SLOs at the end of its history, reads the autoscalers over the cluster metrics'
    `hours`, and scans every sample image in one run (so that a second demo has nothing left
    to do)."""
    keys = {k.to_user_string() for k in node.keys}
    if "deploy/scaling_history" in keys:
        # The same last 24 hours as the cluster metrics (`hours`), read once: a demo that
        # crosses an hour boundary between the two would store one more hour the next time.
        return {"ops": {"deploy__scaling_history": {"config": {"at": hours[1].isoformat()}}}}
    if "slo/slo_status" in keys:
        # Always the sample's SLOs: an SLO file of one's own reads one's own Prometheus and
        # services, which the sample organisation is not.
        end = settings.timbel_sample_end_date or dt.datetime.now(dt.UTC).date()
        at = dt.datetime.combine(end, dt.time(), dt.UTC).isoformat()
        config = {"slo_file": str(SAMPLE_SLO_FILE), "at": at}
        return {"ops": {"slo__slo_status": {"config": config}}}
    if "alerts/alert_events" in keys:
        rules = settings.timbel_alert_rules_file or SAMPLE_RULES
        return {"ops": {"alerts__alert_events": {"config": {"rules_file": str(rules)}}}}
    if "security/scan_results" in keys:
        return {"ops": {"security__scan_results": {"config": {"max_images": 1000}}}}
    return {}


def _cluster_cost(connection: Any, start: dt.datetime, end: dt.datetime) -> list[dict[str, Any]]:
    from sqlalchemy import func, select

    rows = connection.execute(
        select(C.cluster, func.sum(C.allocated_cost), func.sum(C.idle_cost))
        .where(C.hour >= start, C.hour < end)
        .group_by(C.cluster)
        .order_by(C.cluster)
    )
    return [
        {"cluster": c, "allocated_usd": round(a or 0, 2), "idle_usd": round(i or 0, 2)}
        for c, a, i in rows
    ]


def _alerts(connection: Any) -> dict[str, int]:
    from sqlalchemy import func, select

    return dict(connection.execute(select(Alert.state, func.count()).group_by(Alert.state)).all())


def _insights(connection: Any) -> dict[str, Any]:
    """What the ML and security assets found: the risk model against its baselines, the
    biggest pipeline saving, next month's cost, open vulnerabilities by severity."""
    from sqlalchemy import func, select

    found: dict[str, Any] = {}
    model = connection.execute(
        select(MlModel.version, MlModel.evaluation).order_by(MlModel.version.desc()).limit(1)
    ).first()
    if model:
        e = model.evaluation
        found["risk_model"] = {"version": model.version} | {
            k: round(e[k], 3) for k in ("auc", "baseline_la_auc", "baseline_rf_auc")
        }
    saving = connection.execute(
        select(BottleneckFinding.summary, BottleneckFinding.seconds_saved_per_run)
        .where(BottleneckFinding.kind.like("suggest_%"))
        .order_by(BottleneckFinding.seconds_saved_per_run.desc())
        .limit(1)
    ).first()
    if saving:
        found["top_suggestion"] = {"summary": saving[0], "seconds_saved_per_run": saving[1]}
    total = connection.execute(
        select(
            func.sum(CostForecast.cost_usd),
            func.sum(CostForecast.cost_lo95),
            func.sum(CostForecast.cost_hi95),
        ).where(CostForecast.scope == "total")
    ).first()
    if total and total[0] is not None:
        found["cost_next_30d_usd"] = [round(v, 2) for v in total]
    found["open_vulnerabilities"] = dict(
        connection.execute(
            select(V.severity, func.count()).where(V.fixed_at.is_(None)).group_by(V.severity)
        ).all()
    )
    return found


def run_demo(settings: Settings, echo: Callable[[str], None]) -> DemoReport:
    """Set up, materialize every asset on the sample organisation and report."""

    url = settings.database_url
    home = settings.dagster_home
    report = DemoReport(database=display_url(url), dagster_home=str(home))
    echo(f"Warehouse: {report.database}")
    before, after = migrate.upgrade(url, actor=settings.timbel_user)
    echo(f"Schema: {before or 'empty'} -> {after}")
    instance = open_instance(home)
    echo(f"Dagster instance: {home}")
    resources = {
        "warehouse": WarehouseResource(database_url=url),
        "sources": DeliverySourcesResource(
            mode="sample",
            sample_seed=settings.timbel_sample_seed,
            sample_end_date=(
                settings.timbel_sample_end_date or dt.datetime.now(dt.UTC).date()
            ).isoformat(),
        ),
    }
    # The partitions start where the sample does, as in the UI of `make dev` (sample mode).
    start = history_start(settings, sample=True)
    definitions = build_definitions(start)
    assets = list(definitions.assets or [])
    nodes = asset_nodes_in_order(assets)
    days = _sample_days(resources["sources"])
    clusters, hours = _cluster_hours(instance, resources["sources"])
    for position, node in enumerate(nodes, start=1):
        keys = sorted(key.to_user_string() for key in node.keys)
        tags = {"timbel/launched_by": "demo"}
        if node.partitions_def == cluster_hourly(start):  # every cluster, the last hours, one run
            tags |= cluster_range_tags(clusters, *hours)
            keys_text = f"{', '.join(keys)} ({len(clusters)} clusters, {window_text(*hours)})"
        elif node.partitions_def == daily(start):  # the sample's days, as one run
            tags |= range_tags(*days)
            keys_text = f"{', '.join(keys)} (days {days[0]} to {days[1]})"
        elif node.partitions_def is not None:  # weekly reports: the last complete period
            last = node.partitions_def.get_last_partition_key()
            tags |= range_tags(last, last)
            keys_text = f"{', '.join(keys)} ({last})"
        else:
            keys_text = ", ".join(keys)
        echo(f"[{position}/{len(nodes)}] materializing {keys_text} ...")
        started = time.perf_counter()
        # The node's domain job (named on the runs page), only the node's assets selected
        # (subset first: a subset built with other resources would conflict with the job's).
        job = job_for(definitions, node.keys).get_subset(asset_selection=set(node.keys))
        result = job.execute_in_process(
            instance=instance,
            resources=resources,
            tags=tags,
            run_config=QUIET | _node_config(node, settings, hours),
        )
        seconds = round(time.perf_counter() - started, 2)
        for warning in run_warnings(instance, result.run_id):
            echo(f"      warning: {warning}")
        written = rows_written(result)
        echo(
            f"      done in {seconds}s, run {result.run_id[:8]}; rows written: "
            + ", ".join(f"{k} {v}" for k, v in written.items())
        )
        report.runs.append(
            {"run_id": result.run_id, "assets": keys, "seconds": seconds, "rows_written": written}
        )
    with get_engine(url).connect() as connection:
        report.executions = _execution_summary(connection)
        report.dora = _dora_last_weeks(connection)
        report.cluster_cost = _cluster_cost(connection, *hours)
        report.alerts = _alerts(connection)
        report.insights = _insights(connection)
    instance.dispose()
    return report


def format_report(report: DemoReport) -> str:
    """The short human-readable report printed at the end of `timbel demo`."""
    e, d = report.executions, report.dora or {}
    rate = f"{e['success_rate']:.1%}" if e.get("success_rate") is not None else "-"

    def hours(value: float | None) -> str:
        return f"{value:.1f} h" if value is not None else "-"

    lines = [
        "",
        "Timbel demo report (sample organisation; every row has source='sample')",
        f"  executions ingested   {e.get('total', 0)}  by status {e.get('by_status', {})}",
        f"  success rate          {rate}",
    ]
    if d:
        lines += [
            "  last 4 weeks in prod (DORA):",
            f"    deployment frequency  {d['deployments_per_day']:.2f} per day "
            f"({d['deployments']} deployments)",
            f"    lead time for changes {hours(d['lead_time_hours_median'])} (median)",
            f"    change failure rate   {(d['change_failure_rate'] or 0):.1%}",
            f"    time to restore       {hours(d['time_to_restore_hours_median'])} (median)",
            f"    rework rate           {(d['rework_rate'] or 0):.1%}",
        ]
    if report.cluster_cost:
        lines.append("  cluster cost, last 24 hours (OpenCost default prices):")
        lines += [
            f"    {c['cluster']:<16} allocated {c['allocated_usd']:>8.2f} USD   "
            f"idle {c['idle_usd']:>8.2f} USD"
            for c in report.cluster_cost
        ]
    i = report.insights
    if i.get("risk_model"):
        m = i["risk_model"]
        lines.append(
            f"  risk model v{m['version']}       AUC {m['auc']:.3f} on the newest 20 % of "
            f"deployments (lines added {m['baseline_la_auc']:.3f}, random forest "
            f"{m['baseline_rf_auc']:.3f})"
        )
    if i.get("top_suggestion"):
        t = i["top_suggestion"]
        lines.append(
            f"  biggest pipeline saving {t['seconds_saved_per_run']:.0f} s per run: {t['summary']}"
        )
    if i.get("cost_next_30d_usd"):
        cost, low, high = i["cost_next_30d_usd"]
        lines.append(
            f"  cost, next 30 days    {cost:,.2f} USD (95 % interval {low:,.2f} - {high:,.2f})"
        )
    if i.get("open_vulnerabilities"):
        lines.append(f"  open vulnerabilities  {i['open_vulnerabilities']}")
    if report.alerts:
        lines.append(f"  alerts                {report.alerts}")
    lines.append("  what ran:")
    lines += [
        f"    run {r['run_id'][:8]}  {', '.join(r['assets'])}  ({r['seconds']}s)"
        for r in report.runs
    ]
    lines += [
        "",
        "Open the Dagster UI on these runs and assets with:  make dev",
        "  (then browse http://127.0.0.1:3000; the CLI: .venv/bin/timbel executions list)",
    ]
    return "\n".join(lines)
