"""`timbel clusters check`: each configured cluster read live through the Kubernetes API:
its version, node conditions, pods that are not running or crash-looping, rollouts that are
stuck, and recent warning events."""

from __future__ import annotations

import datetime as dt
from collections import Counter
from typing import TYPE_CHECKING, Any

from timbel_dagster.resources.delivery import SourceNotConfiguredError
from timbel_dagster.resources.errors import SourceError

if TYPE_CHECKING:
    from timbel_dagster.resources.kubernetes import KubernetesClient

PRESSURE = ("MemoryPressure", "DiskPressure", "PIDPressure", "NetworkUnavailable")


def check_cluster(client: KubernetesClient, since: dt.datetime) -> dict[str, Any]:
    """What is wrong in one cluster now (and its warning events since `since`)."""
    nodes, pods = client.nodes(), client.pods()
    deployments, events = client.deployments(), client.events(since=since)
    warnings = [e for e in events if e.type == "Warning"]
    return {
        "version": client.version(),
        "nodes": len(nodes),
        "nodes_not_ready": sorted(n.name for n in nodes if not n.conditions.get("Ready")),
        "nodes_under_pressure": sorted(
            n.name for n in nodes if any(n.conditions.get(c) for c in PRESSURE)
        ),
        "pods": len(pods),
        "pods_not_running": sorted(
            f"{p.namespace}/{p.name} ({p.phase})"
            for p in pods
            if p.phase not in ("Running", "Succeeded")
        ),
        "pods_crash_looping": sorted(
            f"{p.namespace}/{p.name}" for p in pods if "CrashLoopBackOff" in p.waiting_reasons
        ),
        "deployments": len(deployments),
        "rollouts_stuck": sorted(
            f"{d.namespace}/{d.name}" for d in deployments if d.rollout_failed
        ),
        "rollouts_in_progress": sorted(
            f"{d.namespace}/{d.name}"
            for d in deployments
            if not d.rolled_out and not d.rollout_failed
        ),
        "warning_events": len(warnings),
        "warning_reasons": dict(Counter(e.reason for e in warnings).most_common(5)),
    }


def healthy(report: dict[str, Any]) -> bool:
    return not any(
        report.get(key)
        for key in (
            "error",
            "nodes_not_ready",
            "nodes_under_pressure",
            "pods_crash_looping",
            "rollouts_stuck",
        )
    )


def check_clusters(resource: Any, only: str | None, since: dt.datetime) -> list[dict[str, Any]]:
    """Every configured cluster (or `only`); a cluster that cannot be read is reported with
    its error and the others are still checked."""

    names = [c.name for c in resource.clusters()]
    if only is not None and only not in names:
        raise LookupError(f"no cluster {only!r} in the clusters file; known: {', '.join(names)}")
    reports = []
    for name in [only] if only else names:
        report: dict[str, Any] = {"cluster": name}
        try:
            with resource.client(name) as client:
                report |= check_cluster(client, since)
        except (SourceError, SourceNotConfiguredError) as error:
            report["error"] = str(error)
        report["healthy"] = healthy(report)
        reports.append(report)
    return reports
