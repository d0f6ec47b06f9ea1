"""Grafana dashboards over the warehouse: plain functions that build the dashboard JSON.

Panels query the warehouse through Grafana's PostgreSQL data source (uid `timbel-warehouse`,
provisioned next to the dashboards) with Grafana's `$__timeFilter` macro and a `$cluster`
variable; nothing else is assumed of Grafana.
"""

from __future__ import annotations

from typing import Any

DATASOURCE = {"type": "grafana-postgresql-datasource", "uid": "timbel-warehouse"}
CLUSTER_FILTER = "cluster IN ($cluster)"


def _panel(
    title: str,
    sql: str,
    kind: str = "timeseries",
    unit: str | None = None,
    fmt: str = "time_series",
    where: str = "",
) -> dict[str, Any]:
    # The query is text for Grafana (never executed here); its `{where}` is one of this
    # module's constant filters, filled in here rather than by f-strings at every panel.
    sql = sql.replace("{where}", where)
    panel: dict[str, Any] = {
        "type": kind,
        "title": title,
        "datasource": DATASOURCE,
        "targets": [
            {
                "refId": "A",
                "datasource": DATASOURCE,
                "rawQuery": True,
                "editorMode": "code",
                "format": fmt,
                "rawSql": " ".join(sql.split()),
            }
        ],
        "fieldConfig": {"defaults": {"unit": unit} if unit else {}, "overrides": []},
        "options": {},
    }
    return panel


def _layout(panels: list[dict[str, Any]], per_row: int = 2) -> list[dict[str, Any]]:
    width = 24 // per_row
    for index, panel in enumerate(panels, start=1):
        row, column = divmod(index - 1, per_row)
        panel["id"] = index
        panel["gridPos"] = {"h": 8, "w": width, "x": column * width, "y": row * 8}
    return panels


def _dashboard(uid: str, title: str, panels: list[dict[str, Any]], clusters: bool) -> dict:
    templating = []
    if clusters:
        templating.append(
            {
                "name": "cluster",
                "type": "query",
                "datasource": DATASOURCE,
                "query": "SELECT DISTINCT cluster FROM node_metrics ORDER BY 1",
                "multi": True,
                "includeAll": True,
                "current": {"text": "All", "value": "$__all"},
                "refresh": 1,
            }
        )
    return {
        "uid": uid,
        "title": title,
        "tags": ["timbel"],
        "timezone": "utc",
        "schemaVersion": 39,
        "version": 1,
        "editable": True,
        "time": {"from": "now-7d", "to": "now"},
        "templating": {"list": templating},
        "panels": _layout(panels),
    }


def resources_dashboard() -> dict[str, Any]:
    where = f"$__timeFilter(hour) AND {CLUSTER_FILTER}"
    return _dashboard(
        "timbel-resources",
        "Timbel: cluster resources",
        [
            _panel(
                "CPU cores used and requested",
                """SELECT hour AS time, cluster || ' used' AS metric, SUM(cpu_used_cores) AS value
                FROM namespace_usage WHERE {where} GROUP BY 1, 2
                UNION ALL SELECT hour, cluster || ' requested', SUM(cpu_requested_cores)
                FROM namespace_usage WHERE {where} GROUP BY 1, 2 ORDER BY 1""",
                where=where,
            ),
            _panel(
                "Memory used (GiB)",
                """SELECT hour AS time, cluster AS metric,
                SUM(memory_used_bytes) / 1073741824.0 AS value
                FROM namespace_usage WHERE {where} GROUP BY 1, 2 ORDER BY 1""",
                where=where,
            ),
            _panel(
                "Namespaces nearest their CPU quota (peak / quota)",
                """SELECT cluster, namespace, MAX(cpu_used_cores_max / cpu_quota_cores) AS ratio
                FROM namespace_usage WHERE {where} AND cpu_quota_cores > 0
                GROUP BY 1, 2 ORDER BY 3 DESC LIMIT 20""",
                where=where,
                kind="table",
                fmt="table",
            ),
            _panel(
                "Unhealthy workload hours",
                """SELECT hour AS time, cluster AS metric, COUNT(*) AS value
                FROM workload_status WHERE {where} AND NOT healthy GROUP BY 1, 2 ORDER BY 1""",
                where=where,
            ),
        ],
        clusters=True,
    )


def cost_dashboard() -> dict[str, Any]:
    where = f"$__timeFilter(hour) AND {CLUSTER_FILTER}"
    return _dashboard(
        "timbel-cost",
        "Timbel: cost",
        [
            _panel(
                "Cost per namespace (USD per hour)",
                """SELECT hour AS time, namespace AS metric, SUM(total_cost) AS value
                FROM cost_allocations WHERE {where} GROUP BY 1, 2 ORDER BY 1""",
                where=where,
                unit="currencyUSD",
            ),
            _panel(
                "Allocated and idle cost per cluster (USD per hour)",
                """SELECT hour AS time, cluster || ' allocated' AS metric,
                SUM(allocated_cost) AS value FROM cluster_costs WHERE {where} GROUP BY 1, 2
                UNION ALL SELECT hour, cluster || ' idle', SUM(idle_cost)
                FROM cluster_costs WHERE {where} GROUP BY 1, 2 ORDER BY 1""",
                where=where,
                unit="currencyUSD",
            ),
            _panel(
                "Cost per tenant in the period (USD)",
                """SELECT tenant, SUM(total_cost) AS cost FROM cost_allocations
                WHERE {where} GROUP BY 1 ORDER BY 2 DESC""",
                where=where,
                kind="table",
                fmt="table",
                unit="currencyUSD",
            ),
            _panel(
                "Rightsizing: saving per hour if requests followed p95 usage",
                """SELECT cluster, namespace, workload, cpu_requested, cpu_p95, cpu_recommended,
                memory_gib_requested, memory_gib_p95, saving_per_hour
                FROM rightsizing_suggestions WHERE {where}
                ORDER BY saving_per_hour DESC LIMIT 25""",
                where=CLUSTER_FILTER,
                kind="table",
                fmt="table",
            ),
        ],
        clusters=True,
    )


def dora_dashboard() -> dict[str, Any]:
    where = "$__timeFilter(week_start) AND service = '*' AND environment = 'prod'"
    return _dashboard(
        "timbel-dora",
        "Timbel: DORA metrics (prod, whole organisation)",
        [
            _panel(
                "Deployment frequency (per day)",
                """SELECT week_start AS time, deployments_per_day AS value
                FROM dora_metrics WHERE {where} ORDER BY 1""",
                where=where,
            ),
            _panel(
                "Lead time for changes (median hours)",
                """SELECT week_start AS time, lead_time_hours_median AS value
                FROM dora_metrics WHERE {where} ORDER BY 1""",
                where=where,
                unit="h",
            ),
            _panel(
                "Change failure rate",
                """SELECT week_start AS time, change_failure_rate AS value
                FROM dora_metrics WHERE {where} ORDER BY 1""",
                where=where,
                unit="percentunit",
            ),
            _panel(
                "Time to restore (median hours)",
                """SELECT week_start AS time, time_to_restore_hours_median AS value
                FROM dora_metrics WHERE {where} ORDER BY 1""",
                where=where,
                unit="h",
            ),
        ],
        clusters=False,
    )


DASHBOARDS = {
    "timbel-resources.json": resources_dashboard,
    "timbel-cost.json": cost_dashboard,
    "timbel-dora.json": dora_dashboard,
}

DATASOURCE_PROVISIONING = """\
# Grafana data source provisioning for the Timbel warehouse (PostgreSQL).
# Copy into /etc/grafana/provisioning/datasources/ and set the connection values.
apiVersion: 1
datasources:
  - name: Timbel warehouse
    uid: timbel-warehouse
    type: grafana-postgresql-datasource
    url: ${TIMBEL_GRAFANA_DB_HOST}:5432
    user: ${TIMBEL_GRAFANA_DB_USER}
    secureJsonData:
      password: ${TIMBEL_GRAFANA_DB_PASSWORD}
    jsonData:
      database: ${TIMBEL_GRAFANA_DB_NAME}
      sslmode: require
"""

DASHBOARD_PROVISIONING = """\
# Grafana dashboard provisioning: point `path` at the directory grafana_dashboards writes.
apiVersion: 1
providers:
  - name: timbel
    folder: Timbel
    type: file
    options:
      path: {path}
"""
