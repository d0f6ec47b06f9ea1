"""`dashboards/grafana_dashboards`: the files it writes, and every panel's SQL run against the
PostgreSQL warehouse the way Grafana would run it (macros and variables expanded)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import dagster as dg
import pytest
from sqlalchemy import text

from tests.assets.test_cluster_assets import ASSETS, SAMPLE_CLUSTERS
from tests.migrated_postgres import MigratedPostgres
from timbel_dagster.assets.dashboards.grafana import DASHBOARDS, DATASOURCE
from timbel_dagster.bindings.warehouse import WarehouseResource
from timbel_dagster.partitions import CLUSTERS, range_tags
from timbel_dagster.resources.sources import DeliverySourcesResource
from timbel_dagster.warehouse.engine import get_engine

FROM, TO = "2026-10-01T00:00:00Z", "2026-11-02T00:00:00Z"


def grafana_sql(sql: str) -> str:
    """What Grafana's PostgreSQL data source sends for a panel: `$__timeFilter(col)` and
    the `$cluster` variable (All) expanded."""
    sql = re.sub(r"\$__timeFilter\((\w+)\)", rf"\1 BETWEEN '{FROM}' AND '{TO}'", sql)
    return sql.replace("$cluster", ", ".join(f"'{c}'" for c in SAMPLE_CLUSTERS))


@pytest.fixture
def postgres_warehouse(_postgres_head: MigratedPostgres) -> str:
    """The PostgreSQL warehouse migrated once per session and emptied here (conftest), as
    `warehouse_url` gives it: a downgrade and upgrade around the test took seconds."""
    _postgres_head.empty()
    return _postgres_head.url


def test_dashboards_are_written_and_every_panel_query_runs(
    postgres_warehouse: str, tmp_path: Path
) -> None:
    resources = {
        "warehouse": WarehouseResource(database_url=postgres_warehouse),
        "sources": DeliverySourcesResource(mode="sample", sample_end_date="2026-11-01"),
    }
    with dg.DagsterInstance.ephemeral() as instance:
        instance.add_dynamic_partitions(CLUSTERS.name, SAMPLE_CLUSTERS)
        assert dg.materialize(
            ASSETS,
            instance=instance,
            resources=resources,
            selection=dg.AssetSelection.groups("cluster"),
            tags=range_tags("seoul-dev-01|2026-11-01-00:00", "seoul-prod-01|2026-11-01-23:00"),
        ).success
        assert dg.materialize(
            ASSETS,
            instance=instance,
            resources=resources,
            selection=dg.AssetSelection.groups("org", "cicd", "deploy"),
            # The panels' time range (FROM) and a week before it: the CI days they read.
            tags=range_tags("2026-09-24", "2026-11-01"),
        ).success
        result = dg.materialize(
            ASSETS,
            instance=instance,
            resources=resources,
            selection=[dg.AssetKey(["dashboards", "grafana_dashboards"])],
            run_config={
                "ops": {"dashboards__grafana_dashboards": {"config": {"directory": str(tmp_path)}}}
            },
        )
    metadata = result.asset_materializations_for_node("dashboards__grafana_dashboards")[0].metadata
    assert metadata["dashboards"].value == 3 and metadata["panels"].value == 12
    assert metadata["cost_last_day_usd"].value > 0
    assert 0 < metadata["cpu_used_over_requested"].value < 1
    assert {p.name for p in tmp_path.iterdir()} == {
        *DASHBOARDS,
        "datasource.yaml",
        "dashboards.yaml",
    }
    returned = 0
    with get_engine(postgres_warehouse).connect() as connection:
        for name in DASHBOARDS:
            dashboard = json.loads((tmp_path / name).read_text())
            assert dashboard["uid"] and dashboard["schemaVersion"] >= 36
            for panel in dashboard["panels"]:
                (target,) = panel["targets"]
                assert target["datasource"] == DATASOURCE
                rows = connection.execute(text(grafana_sql(target["rawSql"]))).all()
                returned += bool(rows)
                if panel["type"] == "timeseries":
                    assert all(len(r) in (2, 3) for r in rows), panel["title"]
            for variable in dashboard["templating"]["list"]:
                assert connection.execute(text(variable["query"])).scalars().all() == sorted(
                    SAMPLE_CLUSTERS
                )
    assert returned == 12  # every panel has data on the sample
