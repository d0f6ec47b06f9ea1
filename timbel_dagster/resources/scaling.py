"""Where scaling history comes from: the clusters' HorizontalPodAutoscalers and their
SuccessfulRescale events, or the sample organisation's autoscaled prod services."""

from __future__ import annotations

import datetime as dt
import math
from dataclasses import dataclass
from typing import Any

from timbel_dagster.resources.sample.metrics import UTILISATION, _load
from timbel_dagster.resources.sample.organisation import CLUSTERS, SERVICES


@dataclass(frozen=True)
class ScalingRow:
    cluster: str
    namespace: str
    workload: str
    at: dt.datetime
    reason: str  # status | SuccessfulRescale | FailedGetResourceMetric ...
    current_replicas: int | None = None
    desired_replicas: int | None = None
    min_replicas: int | None = None
    max_replicas: int | None = None
    cpu_utilization: int | None = None
    message: str | None = None


class KubernetesScaling:
    """HPA status now, and the autoscalers' events, from every configured cluster."""

    name = "kubernetes"

    def __init__(self, kubernetes: Any) -> None:
        self.kubernetes = kubernetes

    def rows(self, now: dt.datetime) -> list[ScalingRow]:
        from kubernetes import client as k8s

        found: list[ScalingRow] = []
        for cluster in self.kubernetes.clusters():
            with self.kubernetes.client(cluster.name) as client:
                api = k8s.AutoscalingV2Api(client.api_client)
                answer = client.call(
                    "horizontalpodautoscalers",
                    api.list_horizontal_pod_autoscaler_for_all_namespaces,
                )
                for item in answer.get("items") or []:
                    found.append(_status_row(cluster.name, item, now))
                found += [
                    ScalingRow(
                        cluster.name, e.namespace, e.name or "", e.last_timestamp, e.reason or "",
                        message=e.message,
                    )
                    for e in client.events()
                    if e.kind == "HorizontalPodAutoscaler" and e.last_timestamp is not None
                ]  # fmt: skip
        return found


def _status_row(cluster: str, item: dict[str, Any], now: dt.datetime) -> ScalingRow:
    meta, spec, status = item["metadata"], item.get("spec") or {}, item.get("status") or {}
    cpu = next(
        (
            m["resource"]["current"].get("averageUtilization")
            for m in status.get("currentMetrics") or []
            if m.get("type") == "Resource" and (m.get("resource") or {}).get("name") == "cpu"
        ),
        None,
    )
    return ScalingRow(
        cluster=cluster,
        namespace=meta.get("namespace", ""),
        workload=(spec.get("scaleTargetRef") or {}).get("name", meta["name"]),
        at=now.replace(second=0, microsecond=0),
        reason="status",
        current_replicas=status.get("currentReplicas"),
        desired_replicas=status.get("desiredReplicas"),
        min_replicas=spec.get("minReplicas"),
        max_replicas=spec.get("maxReplicas"),
        cpu_utilization=cpu,
    )


class SampleScaling:
    """The sample's prod services autoscaled 2-10 on CPU (the `web` template), hour by hour
    over the sample's last day (or the last 24 hours if that is today), following the
    sample's daily load curve."""

    name = "sample"

    def __init__(self, end_date: dt.date) -> None:
        self.end_date = end_date

    def rows(self, now: dt.datetime) -> list[ScalingRow]:
        prod = next(c.name for c in CLUSTERS if c.environment_group == "prod")
        day_after = dt.datetime.combine(self.end_date, dt.time(), dt.UTC) + dt.timedelta(days=1)
        end = min(now.replace(minute=0, second=0, microsecond=0), day_after)
        rows: list[ScalingRow] = []
        for service in SERVICES:
            previous = None
            for back in range(24, 0, -1):
                hour = end - dt.timedelta(hours=back)
                utilisation = UTILISATION.get(service.name, 0.6) * _load(hour)
                desired = max(2, min(10, math.ceil(3 * utilisation / 0.7)))
                rows.append(
                    ScalingRow(prod, service.team, service.name, hour, "status", desired,
                               desired, 2, 10, round(100 * utilisation))
                )  # fmt: skip
                if previous is not None and desired != previous:
                    rows.append(
                        ScalingRow(
                            prod, service.team, service.name, hour, "SuccessfulRescale",
                            message=f"New size: {desired}; reason: cpu resource utilization "
                            f"(percentage of request) {'above' if desired > previous else 'below'}"
                            " target",
                        )
                    )  # fmt: skip
                previous = desired
        return rows
