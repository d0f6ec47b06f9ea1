"""`slo/slo_status`: each SLO's SLI, error budget and burn rates, evaluated now and kept as
history; the built-in burn-rate alert rules read its latest rows."""

# No `from __future__ import annotations`: Dagster reads these annotations at definition time.
import datetime as dt
from pathlib import Path

import dagster as dg

from timbel_dagster.assets.ingestion import OWNERS, markdown_table
from timbel_dagster.bindings.warehouse import WarehouseResource
from timbel_dagster.resources.sources import DeliverySourcesResource
from timbel_dagster.settings import get_settings
from timbel_dagster.slo.spec import load_slo_file, slo_file

# The burn-rate windows shown on the asset's page: the long window of each alert condition
# and the shortest one (the whole set is in the table and `timbel slo status`).
SHOWN_BURN = ("5m", "1h", "6h", "1d", "3d")


class SloStatusConfig(dg.Config):
    slo_file: str | None = None  # default TIMBEL_SLO_FILE (in sample mode, the sample's)
    at: str | None = None  # ISO 8601 time to evaluate at (default: now); UTC unless it says


def evaluation_time(text: str | None) -> dt.datetime:
    """When to evaluate: `text` (ISO 8601, UTC unless it says otherwise) or now, to the
    second (a status row's key)."""
    if not text:
        return dt.datetime.now(dt.UTC).replace(microsecond=0)
    try:
        moment = dt.datetime.fromisoformat(text)
    except ValueError:
        raise ValueError(f"slo_status config 'at': {text!r} is not an ISO 8601 time") from None
    return (moment if moment.tzinfo else moment.replace(tzinfo=dt.UTC)).astimezone(dt.UTC)


def _shown(value, scale: float = 1.0, unit: str = "") -> str:
    return "-" if value is None else f"{value * scale:.4g}{unit}"


def status_rows(statuses) -> list[dict]:
    """The statuses as the rows of the page's markdown table."""
    return [
        {
            "slo": s.key,
            "sli": _shown(s.sli, 100, " %"),
            "objective": _shown(s.objective, 100, " %"),
            "budget left": _shown(s.budget_remaining, 100, " %"),
            "events": f"{s.good:g}/{s.total:g}",
        }
        | {f"burn {w}": _shown(s.burn[w], unit="x") for w in SHOWN_BURN}
        | {"alert": s.alert or "-"}
        for s in statuses
    ]


@dg.asset(
    key=["slo", "slo_status"],
    group_name="slo",
    kinds={"prometheus", "sql"},
    owners=OWNERS,
    # The warehouse SLIs count stored executions: evaluated after they are ingested.
    deps=[["cicd", "pipeline_executions"]],
    description="One row per SLO and evaluation: its SLI and error budget over the SLO's "
    "window and its burn rate over 5m, 30m, 1h, 2h, 6h, 1d and 3d (TIMBEL_SLO_FILE).",
)
def slo_status(
    context: dg.AssetExecutionContext,
    config: SloStatusConfig,
    warehouse: WarehouseResource,
    sources: DeliverySourcesResource,
):
    # lazy: slo.status loads SQLAlchemy; the code location loads without it
    from timbel_dagster.slo.status import evaluate, store

    path = Path(config.slo_file) if config.slo_file else slo_file(get_settings())
    if path is None:
        context.log.info("no SLOs: set TIMBEL_SLO_FILE (docs/slos.md)")
        return dg.MaterializeResult(
            metadata={"slos": dg.MetadataValue.int(0), "rows_written": dg.MetadataValue.int(0)}
        )
    slos = load_slo_file(path, setting=None if config.slo_file else "TIMBEL_SLO_FILE")
    at = evaluation_time(config.at)
    needs_prometheus = any(s.sli.source == "prometheus" for s in slos)
    # The Prometheus the cluster metrics read (PROMETHEUS_URL); asked only when an SLO needs
    # it, so warehouse SLOs evaluate where none is configured.
    client = sources.prometheus.client() if needs_prometheus else None
    # Prometheus and the warehouse are read first; the statuses are written in one
    # transaction after (no query runs inside it).
    statuses = evaluate(slos, warehouse.engine(), client, at)
    with warehouse.begin() as connection:
        result = store(connection, statuses)
    alerts = {s: sum(x.alert == s for x in statuses) for s in ("page", "ticket")}
    unknown = sum(s.sli is None for s in statuses)
    context.log.info(
        f"{len(statuses)} SLOs from {path} at {at.isoformat()}: {alerts['page']} paging, "
        f"{alerts['ticket']} ticket, {unknown} without traffic"
    )
    return dg.MaterializeResult(
        metadata={
            "slo_file": dg.MetadataValue.path(str(path)),
            "evaluated_at": dg.MetadataValue.text(at.isoformat()),
            "slos": dg.MetadataValue.int(len(statuses)),
            "paging": dg.MetadataValue.int(alerts["page"]),
            "ticket": dg.MetadataValue.int(alerts["ticket"]),
            "without_traffic": dg.MetadataValue.int(unknown),
            "rows_written": dg.MetadataValue.int(result.written),
            "status": markdown_table(
                status_rows(statuses),
                ["slo", "sli", "objective", "budget left", "events"]
                + [f"burn {w}" for w in SHOWN_BURN]
                + ["alert"],
                limit=50,
            ),
        }
    )
