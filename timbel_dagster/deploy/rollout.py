"""Rolling an image out to one cluster, and the per-cluster status rows. Plain functions:
the deploy job's ops and the tests call them."""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from timbel_dagster.resources.kubernetes_records import KubeDeployment, parse_deployment

if TYPE_CHECKING:
    from sqlalchemy.engine import Engine

    from timbel_dagster.resources.kubernetes import KubernetesClient

REVISION = "deployment.kubernetes.io/revision"
STRATEGIES = ("rollback_all", "rollback_failed", "halt")


class RolloutError(RuntimeError):
    """A rollout did not finish: stuck, timed out, or the Deployment is not there."""


def find_deployment(client: KubernetesClient, service: str) -> dict[str, Any]:
    """The one Deployment named `service` in the cluster, whatever its namespace."""
    from kubernetes import client as k8s

    apps = k8s.AppsV1Api(client.api_client)
    answer = client.call(
        f"deployment {service}",
        apps.list_deployment_for_all_namespaces,
        field_selector=f"metadata.name={service}",
    )
    items = answer.get("items") or []
    if len(items) != 1:
        where = ", ".join(i["metadata"]["namespace"] for i in items) or "no namespace"
        raise RolloutError(
            f"cluster {client.cluster.name}: expected one Deployment named {service!r}, "
            f"found {len(items)} ({where})"
        )
    return items[0]


def container_image(deployment: dict[str, Any], container: str | None) -> tuple[int, str]:
    """The index and image of the container to update: `container`, else the one named like
    the Deployment, else its only container."""
    containers = deployment["spec"]["template"]["spec"]["containers"]
    name = deployment["metadata"]["name"]
    for wanted in (container, name):
        for index, spec in enumerate(containers):
            if wanted and spec.get("name") == wanted:
                return index, spec.get("image", "")
    if container is None and len(containers) == 1:
        return 0, containers[0].get("image", "")
    names = ", ".join(c.get("name", "?") for c in containers)
    raise RolloutError(f"Deployment {name}: no container {container or name!r} (has {names})")


def set_image(
    client: KubernetesClient, deployment: dict[str, Any], image: str, container: str | None
) -> str:
    """Point the container at `image`; returns the image it had. The whole container list
    is sent, so strategic-merge and JSON-merge patching agree on the result."""
    from kubernetes import client as k8s

    index, previous = container_image(deployment, container)
    containers = [dict(c) for c in deployment["spec"]["template"]["spec"]["containers"]]
    containers[index]["image"] = image
    meta = deployment["metadata"]
    client.call(
        f"deployment {meta['namespace']}/{meta['name']}",
        k8s.AppsV1Api(client.api_client).patch_namespaced_deployment,
        meta["name"],
        meta["namespace"],
        {"spec": {"template": {"spec": {"containers": containers}}}},
    )
    return previous


def wait_rolled_out(
    client: KubernetesClient,
    namespace: str,
    name: str,
    timeout: float,
    poll: float,
    log: Callable[[str], None],
    sleep: Callable[[float], None] = time.sleep,
) -> tuple[KubeDeployment, dict[str, Any]]:
    """Wait as `kubectl rollout status` does: observed generation caught up and every
    replica updated and available; a ProgressDeadlineExceeded condition is a failure."""
    from kubernetes import client as k8s

    apps = k8s.AppsV1Api(client.api_client)
    deadline = time.monotonic() + timeout
    last = ""
    while True:
        raw = client.call(
            f"deployment {namespace}/{name}", apps.read_namespaced_deployment, name, namespace
        )
        state = parse_deployment(raw)
        progress = (
            f"{state.updated}/{state.replicas} updated, {state.available} available, "
            f"generation {state.observed_generation}/{state.generation}"
        )
        if progress != last:
            log(f"cluster {client.cluster.name}: {namespace}/{name} {progress}")
            last = progress
        if state.rollout_failed:
            condition = state.condition("Progressing")
            raise RolloutError(
                f"cluster {client.cluster.name}: {namespace}/{name} rollout failed: "
                f"{condition.reason if condition else ''} {condition.message if condition else ''}"
            )
        if state.rolled_out:
            return state, raw
        if time.monotonic() >= deadline:
            raise RolloutError(
                f"cluster {client.cluster.name}: {namespace}/{name} not rolled out after "
                f"{timeout:g}s ({progress})"
            )
        sleep(poll)


def revision_of(raw: dict[str, Any]) -> str | None:
    return (raw.get("metadata", {}).get("annotations") or {}).get(REVISION)


def mark_target(engine: Engine, request_id: Any, cluster: str, **values: Any) -> None:
    """Update one cluster's rollout row (its own small transaction: the row shows progress
    while the job runs)."""
    from sqlalchemy import update

    # lazy: warehouse.schema.deploy loads SQLAlchemy; the code location loads without it
    from timbel_dagster.warehouse.schema.deploy import RolloutTarget

    values["updated_at"] = dt.datetime.now(dt.UTC)
    with engine.begin() as connection:
        connection.execute(
            update(RolloutTarget)
            .where(RolloutTarget.request_id == request_id, RolloutTarget.cluster == cluster)
            .values(**values)
        )
