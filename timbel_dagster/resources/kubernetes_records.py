"""Frozen records the Kubernetes client returns, and their parsing from the API's JSON.

The client reads raw JSON (not the kubernetes package's generated models) so that one odd
field in a large cluster cannot fail a whole listing inside model validation; every record
below is built here and a malformed value raises `SourceDataError` naming the object.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

from timbel_dagster.resources.errors import SourceDataError

SYSTEM = "kubernetes"


def parse_quantity(value: str) -> float:
    """A Kubernetes quantity as a number: `"250m"` -> 0.25, `"1Gi"` -> 1073741824.0.

    Args:
        value: a quantity string (`"500M"`, `"1e3"`, `"1.5Gi"`, `"2"`).

    Returns:
        The value in base units (cores, bytes).

    Raises:
        ValueError: the value is not a Kubernetes quantity; the message quotes it.
    """
    from kubernetes.utils import parse_quantity as k8s_parse_quantity

    text = str(value)
    # Decimal() would accept what the API never sends: padding, "NaN", "Infinity", "1_000".
    if text != text.strip() or "_" in text or text.lstrip("+-")[:1] not in "0123456789.":
        raise ValueError(f"not a Kubernetes quantity: {value!r}")
    try:
        return float(k8s_parse_quantity(text))
    except (ValueError, ArithmeticError) as error:
        raise ValueError(f"not a Kubernetes quantity: {value!r} ({error})") from None


@dataclass(frozen=True)
class Resources:
    cpu: float = 0.0  # cores
    memory: float = 0.0  # bytes


@dataclass(frozen=True)
class Condition:
    type: str
    status: str  # True | False | Unknown
    reason: str | None
    message: str | None


@dataclass(frozen=True)
class KubeNode:
    name: str
    labels: dict[str, str]
    capacity: Resources
    allocatable: Resources
    conditions: dict[str, bool]  # Ready -> True, MemoryPressure -> False, ...
    kubelet_version: str | None


@dataclass(frozen=True)
class KubePod:
    namespace: str
    name: str
    phase: str | None
    node: str | None
    owner_kind: str | None  # Deployment when its ReplicaSet belongs to one
    owner_name: str | None
    restarts: int
    waiting_reasons: tuple[str, ...]  # CrashLoopBackOff, ImagePullBackOff, ...
    terminated_reasons: tuple[str, ...]  # of the last termination: OOMKilled, Error, ...
    requests: Resources  # summed over the pod's containers
    limits: Resources
    labels: dict[str, str]


@dataclass(frozen=True)
class KubeDeployment:
    namespace: str
    name: str
    replicas: int  # desired
    ready: int
    available: int
    updated: int
    generation: int
    observed_generation: int
    conditions: tuple[Condition, ...]
    images: tuple[str, ...]

    def condition(self, kind: str) -> Condition | None:
        return next((c for c in self.conditions if c.type == kind), None)

    @property
    def rolled_out(self) -> bool:
        """The same test as `kubectl rollout status`: the newest spec is fully available."""
        return (
            self.observed_generation >= self.generation
            and self.updated >= self.replicas
            and self.available >= self.replicas
        )

    @property
    def rollout_failed(self) -> bool:
        progressing = self.condition("Progressing")
        return progressing is not None and progressing.reason == "ProgressDeadlineExceeded"


@dataclass(frozen=True)
class KubeEvent:
    namespace: str
    kind: str | None  # of the involved object
    name: str | None
    type: str | None  # Normal | Warning
    reason: str | None
    message: str | None
    count: int
    last_timestamp: dt.datetime | None


def _timestamp(value: str | None) -> dt.datetime | None:
    return dt.datetime.fromisoformat(value.replace("Z", "+00:00")) if value else None


def _resources(values: dict[str, Any] | None) -> Resources:
    values = values or {}
    return Resources(
        parse_quantity(values["cpu"]) if "cpu" in values else 0.0,
        parse_quantity(values["memory"]) if "memory" in values else 0.0,
    )


def _sum(parts: list[Resources]) -> Resources:
    return Resources(sum(p.cpu for p in parts), sum(p.memory for p in parts))


def _meta(item: dict[str, Any]) -> dict[str, Any]:
    return item.get("metadata") or {}


def parse_node(item: dict[str, Any]) -> KubeNode:
    status = item.get("status") or {}
    return KubeNode(
        name=_meta(item)["name"],
        labels=dict(_meta(item).get("labels") or {}),
        capacity=_resources(status.get("capacity")),
        allocatable=_resources(status.get("allocatable")),
        conditions={c["type"]: c.get("status") == "True" for c in status.get("conditions") or []},
        kubelet_version=(status.get("nodeInfo") or {}).get("kubeletVersion"),
    )


def controller_of(item: dict[str, Any]) -> dict[str, Any] | None:
    """The controlling ownerReference, else the first one."""
    owners = _meta(item).get("ownerReferences") or []
    return next((o for o in owners if o.get("controller")), owners[0] if owners else None)


def parse_pod(item: dict[str, Any], deployment_of: dict[tuple[str, str], str | None]) -> KubePod:
    """`deployment_of` maps (namespace, ReplicaSet name) to the owning Deployment (or None)
    for the ReplicaSets that could be read; other ReplicaSets fall back to the hash suffix."""
    meta, spec, status = _meta(item), item.get("spec") or {}, item.get("status") or {}
    namespace = meta.get("namespace", "")
    owner = controller_of(item)
    owner_kind, owner_name = (owner.get("kind"), owner.get("name")) if owner else (None, None)
    if owner_kind == "ReplicaSet" and owner_name:
        if (namespace, owner_name) in deployment_of:
            deployment = deployment_of[(namespace, owner_name)]
        else:  # the ReplicaSet is gone or unreadable: its name is <deployment>-<hash>
            suffix = f"-{(meta.get('labels') or {}).get('pod-template-hash', '')}"
            deployment = owner_name.removesuffix(suffix) if len(suffix) > 1 else None
            deployment = deployment if deployment != owner_name else None
        if deployment:
            owner_kind, owner_name = "Deployment", deployment
    statuses = [
        *(status.get("initContainerStatuses") or []),
        *(status.get("containerStatuses") or []),
    ]
    containers = [c.get("resources") or {} for c in spec.get("containers") or []]
    return KubePod(
        namespace=namespace,
        name=meta["name"],
        phase=status.get("phase"),
        node=spec.get("nodeName"),
        owner_kind=owner_kind,
        owner_name=owner_name,
        restarts=sum(int(s.get("restartCount") or 0) for s in statuses),
        waiting_reasons=tuple(
            s["state"]["waiting"].get("reason") or "Waiting"
            for s in statuses
            if (s.get("state") or {}).get("waiting") is not None
        ),
        terminated_reasons=tuple(
            s["lastState"]["terminated"].get("reason") or "Terminated"
            for s in statuses
            if (s.get("lastState") or {}).get("terminated") is not None
        ),
        requests=_sum([_resources(c.get("requests")) for c in containers]),
        limits=_sum([_resources(c.get("limits")) for c in containers]),
        labels=dict(meta.get("labels") or {}),
    )


def parse_deployment(item: dict[str, Any]) -> KubeDeployment:
    meta, spec, status = _meta(item), item.get("spec") or {}, item.get("status") or {}
    template = (spec.get("template") or {}).get("spec") or {}
    return KubeDeployment(
        namespace=meta.get("namespace", ""),
        name=meta["name"],
        replicas=int(spec.get("replicas", 1)),  # the API defaults a missing count to 1
        ready=int(status.get("readyReplicas") or 0),
        available=int(status.get("availableReplicas") or 0),
        updated=int(status.get("updatedReplicas") or 0),
        generation=int(meta.get("generation") or 0),
        observed_generation=int(status.get("observedGeneration") or 0),
        conditions=tuple(
            Condition(c["type"], c.get("status", "Unknown"), c.get("reason"), c.get("message"))
            for c in status.get("conditions") or []
        ),
        images=tuple(c["image"] for c in template.get("containers") or [] if c.get("image")),
    )


def parse_event(item: dict[str, Any]) -> KubeEvent:
    meta, involved = _meta(item), item.get("involvedObject") or {}
    series = item.get("series") or {}
    # Events from the events.k8s.io API leave lastTimestamp/count empty and use
    # eventTime/series instead; the creation time is the last resort.
    last = (
        item.get("lastTimestamp")
        or series.get("lastObservedTime")
        or item.get("eventTime")
        or item.get("firstTimestamp")
        or meta.get("creationTimestamp")
    )
    return KubeEvent(
        namespace=meta.get("namespace", ""),
        kind=involved.get("kind"),
        name=involved.get("name"),
        type=item.get("type"),
        reason=item.get("reason"),
        message=item.get("message"),
        count=int(item.get("count") or series.get("count") or 1),
        last_timestamp=_timestamp(last),
    )


def parse_items(what: str, items: list[Any], parse: Any, *extra: Any) -> list[Any]:
    """Parse every item, turning a malformed one into a `SourceDataError` that names it."""
    parsed = []
    for index, item in enumerate(items):
        try:
            parsed.append(parse(item, *extra))
        except (KeyError, TypeError, ValueError, AttributeError) as error:
            meta = item.get("metadata") if isinstance(item, dict) else None
            name = "/".join(filter(None, [(meta or {}).get("namespace"), (meta or {}).get("name")]))
            detail = f"{type(error).__name__}: {error}"
            raise SourceDataError(SYSTEM, f"{what} {name or f'item {index}'}", detail) from None
    return parsed
