"""Kube-prometheus history for a real Prometheus: what cAdvisor and kube-state-metrics would
have exposed for two small clusters over four hours, written as OpenMetrics for promtool.

The figures are simple on purpose, so tests can state exactly what the hourly summary must
be: constant CPU rates and memory, one restart and a crash loop in a known hour.

`clusters` chooses which clusters are written and how their series name them: by default
both, each in the `cluster` label (a multi-cluster Prometheus); `{"east": None}` is east
alone without the label (kube-prometheus-stack's default: one Prometheus per cluster).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from pathlib import Path

START = dt.datetime(2026, 11, 2, 0, tzinfo=dt.UTC)  # one hour of lead-in before HOURS[0]
HOURS = [START + dt.timedelta(hours=h) for h in (1, 2, 3)]
STEP = 15
POINTS = 4 * 3600 // STEP
GIB = 1024**3

# cluster -> node -> (cores, memory GiB); cluster -> pods
NODES = {"east": {"east-1": (4, 16), "east-2": (4, 16)}, "west": {"west-1": (8, 32)}}
# (cluster, namespace, pod, replicaset or None, deployment, node, cpu cores, memory GiB,
#  cpu request, memory request GiB)
PODS = [
    ("east", "shop", "web-7d9f-abcde", "web-7d9f", "web", "east-1", 0.5, 1.0, 1.0, 2.0),
    ("east", "shop", "web-7d9f-fghij", "web-7d9f", "web", "east-2", 0.25, 1.5, 1.0, 2.0),
    ("east", "data", "etl-0", None, "etl", "east-2", 1.5, 4.0, 1.0, 4.0),
    ("west", "shop", "api-55c-xyz12", "api-55c", "api", "west-1", 2.0, 3.0, 2.0, 4.0),
]
CRASH = ("east", "data", "etl-0")  # crash-loops in HOURS[1], restarting once at its middle
QUOTA = {("east", "shop"): 2.5, ("west", "shop"): 2.0}  # hard requests.cpu
TENANT = {("east", "shop"): "retail"}


def _times() -> list[int]:
    start = int(START.timestamp())
    return [start + i * STEP for i in range(POINTS)]


def _family(out, name: str, kind: str, series: list[tuple[dict, Callable[[int], float]]]) -> None:
    out.write(f"# TYPE {name} {kind}\n")
    sample = f"{name}_total" if kind == "counter" else name
    for labels, value in series:
        text = ",".join(f'{k}="{v}"' for k, v in labels.items())
        for t in _times():
            out.write(f"{sample}{{{text}}} {float(value(t))!r} {t}\n")


def _const(v: float) -> Callable[[int], float]:
    return lambda t: v


def _counter(rate: float) -> Callable[[int], float]:
    start = int(START.timestamp())
    return lambda t: rate * (t - start)


def _in_crash_hour(t: int) -> bool:
    return HOURS[1].timestamp() <= t < HOURS[2].timestamp()


LABELLED = {"east": "east", "west": "west"}
UNLABELLED_EAST = {"east": None}


def _shape(labels: dict, clusters: dict[str, str | None]) -> dict | None:
    """`labels` as `clusters` says: None for a cluster not written, else its `cluster` label
    renamed, or removed where the cluster is written without one."""
    if labels["cluster"] not in clusters:
        return None
    value = clusters[labels["cluster"]]
    rest = {k: v for k, v in labels.items() if k != "cluster"}
    return rest if value is None else {"cluster": value} | rest


def write_kube_history(path: Path, clusters: dict[str, str | None] = LABELLED) -> None:
    crash_restart = HOURS[1].timestamp() + 1800
    with path.open("w") as out:

        def family(name: str, kind: str, series: list) -> None:
            shaped = [(_shape(labels, clusters), value) for labels, value in series]
            _family(out, name, kind, [(lb, v) for lb, v in shaped if lb is not None])

        nodes = [(c, n, spec) for c, ns in NODES.items() for n, spec in ns.items()]
        family(
            "kube_node_info",
            "gauge",
            [
                ({"cluster": c, "node": n, "kernel_version": "6.1.0"}, _const(1))
                for c, n, _ in nodes
            ],
        )
        family(
            "kube_node_status_capacity",
            "gauge",
            [({"cluster": c, "node": n, "resource": "cpu"}, _const(s[0])) for c, n, s in nodes]
            + [
                ({"cluster": c, "node": n, "resource": "memory"}, _const(s[1] * GIB))
                for c, n, s in nodes
            ],
        )
        family(
            "kube_node_status_condition",
            "gauge",
            [
                ({"cluster": c, "node": n, "condition": cond, "status": "true"}, _const(v))
                for c, n, _ in nodes
                for cond, v in (("Ready", 0 if n == "east-2" else 1), ("MemoryPressure", 0))
            ],
        )
        node_cpu = {n: sum(p[6] for p in PODS if p[5] == n) + 0.25 for _, n, _ in nodes}
        root = [({"cluster": c, "node": n, "id": "/"}, _counter(node_cpu[n])) for c, n, _ in nodes]
        pods = [
            ({"cluster": p[0], "namespace": p[1], "pod": p[2], "container": "app"}, p) for p in PODS
        ]
        family(
            "container_cpu_usage_seconds",
            "counter",
            root + [(labels, _counter(p[6])) for labels, p in pods],
        )
        family(
            "container_memory_working_set_bytes",
            "gauge",
            [({"cluster": c, "node": n, "id": "/"}, _const(6 * GIB)) for c, n, _ in nodes]
            + [(labels, _const(p[7] * GIB)) for labels, p in pods],
        )
        for metric, index in (
            ("kube_pod_container_resource_requests", 8),
            ("kube_pod_container_resource_limits", 8),
        ):
            family(
                metric,
                "gauge",
                [(labels | {"resource": "cpu"}, _const(p[index])) for labels, p in pods]
                + [
                    (labels | {"resource": "memory"}, _const(p[index + 1] * GIB))
                    for labels, p in pods
                ],
            )
        pod_labels = [({"cluster": p[0], "namespace": p[1], "pod": p[2]}, p) for p in PODS]
        family(
            "kube_pod_status_phase",
            "gauge",
            [(labels | {"phase": "Running"}, _const(1)) for labels, _ in pod_labels]
            + [(labels | {"phase": "Pending"}, _const(0)) for labels, _ in pod_labels],
        )
        family(
            "kube_pod_info",
            "gauge",
            [(labels | {"node": p[5]}, _const(1)) for labels, p in pod_labels],
        )
        family(
            "kube_pod_owner",
            "gauge",
            [
                (
                    labels
                    | (
                        {"owner_kind": "ReplicaSet", "owner_name": p[3]}
                        if p[3]
                        else {"owner_kind": "StatefulSet", "owner_name": p[4]}
                    ),
                    _const(1),
                )
                for labels, p in pod_labels
            ],
        )
        family(
            "kube_replicaset_owner",
            "gauge",
            [
                (
                    {
                        "cluster": p[0],
                        "namespace": p[1],
                        "replicaset": p[3],
                        "owner_kind": "Deployment",
                        "owner_name": p[4],
                    },
                    _const(1),
                )
                for p in PODS
                if p[3] and p[2] != "web-7d9f-fghij"  # one series per ReplicaSet
            ],
        )
        family(
            "kube_pod_container_status_restarts",
            "counter",
            [
                (
                    labels | {"container": "app"},
                    (lambda t: 1.0 if t >= crash_restart else 0.0)
                    if tuple(labels.values()) == CRASH
                    else _const(0),
                )
                for labels, _ in pod_labels
            ],
        )
        family(
            "kube_pod_container_status_waiting_reason",
            "gauge",
            [
                (
                    {"cluster": CRASH[0], "namespace": CRASH[1], "pod": CRASH[2]}
                    | {"container": "app", "reason": "CrashLoopBackOff"},
                    lambda t: 1.0 if _in_crash_hour(t) else 0.0,
                )
            ],
        )
        namespaces = sorted({(p[0], p[1]) for p in PODS})
        family(
            "kube_resourcequota",
            "gauge",
            [
                (
                    {"cluster": c, "namespace": n, "resource": "requests.cpu", "type": "hard"},
                    _const(q),
                )
                for (c, n), q in QUOTA.items()
            ],
        )
        family(
            "kube_namespace_labels",
            "gauge",
            [
                ({"cluster": c, "namespace": n, "label_timbel_io_tenant": t}, _const(1))
                for (c, n), t in TENANT.items()
            ],
        )
        family(
            "kube_namespace_status_phase",
            "gauge",
            [({"cluster": c, "namespace": n, "phase": "Active"}, _const(1)) for c, n in namespaces],
        )
        out.write("# EOF\n")
