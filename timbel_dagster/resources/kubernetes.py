"""Kubernetes clusters through the official `kubernetes` client, one ApiClient per cluster.

Each cluster of the clusters file (TIMBEL_CLUSTERS_FILE) gets its own `ApiClient`, built
from a kubeconfig context or from `api_url` plus a bearer token read from the variable its
`token_env` names, never from the process-wide kubernetes configuration, so one process can
talk to many clusters. Listings page with `limit`/`continue`, transient failures are retried
with backoff, and every failure becomes a typed error naming the cluster and what was asked.
The `kubernetes` package is imported only when a client is built: loading the code location
stays cheap.
"""

from __future__ import annotations

import datetime as dt
import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import dagster as dg

from timbel_dagster.resources.clusters_file import ClusterConfig, load_clusters
from timbel_dagster.resources.delivery import SourceNotConfiguredError
from timbel_dagster.resources.errors import (
    SourceAuthError,
    SourceError,
    SourceNotFoundError,
    TransientSourceError,
)
from timbel_dagster.resources.kubernetes_records import (
    SYSTEM,
    KubeDeployment,
    KubeEvent,
    KubeNode,
    KubePod,
    controller_of,
    parse_deployment,
    parse_event,
    parse_items,
    parse_node,
    parse_pod,
    parse_quantity,
)
from timbel_dagster.resources.payload import parse_json
from timbel_dagster.settings import get_settings, secret_from_environment

__all__ = ["KubernetesClient", "KubernetesResource", "parse_quantity"]
PAGE_SIZE = 500
# plural -> (kubernetes.client API class, the name its list_* methods use)
LISTS = {
    "nodes": ("CoreV1Api", "node"),
    "pods": ("CoreV1Api", "pod"),
    "events": ("CoreV1Api", "event"),
    "deployments": ("AppsV1Api", "deployment"),
    "replicasets": ("AppsV1Api", "replica_set"),
}


def _api_client(cluster: ClusterConfig, kubeconfig: str | None) -> Any:
    from kubernetes import client, config

    configuration = client.Configuration()
    # Our own loop retries with backoff; urllib3's silent retries would hide the failures.
    configuration.retries = 0
    if cluster.context:
        try:
            return config.new_client_from_config(
                config_file=kubeconfig,
                context=cluster.context,
                persist_config=False,  # never write refreshed credentials back to the file
                client_configuration=configuration,
            )
        except (config.ConfigException, OSError) as error:
            raise SourceNotConfiguredError(
                f"cluster {cluster.name}: kubeconfig context {cluster.context!r} "
                f"({kubeconfig or 'the default kubeconfig'}) cannot be used: {error}"
            ) from None
    configuration.host = str(cluster.api_url).rstrip("/")
    if cluster.token_env:
        # The clusters file names the variable so the token itself never sits in the file.
        token = secret_from_environment(cluster.token_env) or ""
        if not token:
            raise SourceNotConfiguredError(
                f"cluster {cluster.name}: the token variable {cluster.token_env} "
                "(token_env in the clusters file) is not set or empty"
            )
        configuration.api_key = {"authorization": f"Bearer {token}"}
    return client.ApiClient(configuration)


class KubernetesClient:
    """Read access to one cluster. `requests_made` counts every request, retries included."""

    def __init__(
        self,
        cluster: ClusterConfig,
        timeout_seconds: float = 30,
        kubeconfig: str | None = None,
        page_size: int = PAGE_SIZE,
        retries: int = 2,
        backoff_seconds: float = 0.5,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.cluster, self.timeout_seconds, self.page_size = cluster, timeout_seconds, page_size
        self.retries, self.backoff_seconds, self._sleep = retries, backoff_seconds, sleep
        self.api_client = _api_client(cluster, kubeconfig)
        host = self.api_client.configuration.host
        self.target = f"{host} (kubeconfig context {cluster.context})" if cluster.context else host
        self.requests_made = 0

    def close(self) -> None:
        self.api_client.close()

    def __enter__(self) -> KubernetesClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _classify(self, error: Exception, obj: str) -> SourceError:
        from kubernetes.client.exceptions import ApiException

        if not isinstance(error, ApiException):  # urllib3: refused, reset, timed out
            cause = getattr(error, "reason", None) or error
            return TransientSourceError(
                SYSTEM,
                obj,
                f"cannot reach {self.target} ({type(cause).__name__}: {cause}); is the API "
                "server up and the clusters file entry right?",
            )
        status = int(error.status or 0)
        try:
            message = json.loads(error.body or b"{}").get("message") or error.reason
        except (ValueError, AttributeError):
            message = error.reason
        if status == 0:  # the client's own failures: TLS handshake, a bad request
            return SourceError(SYSTEM, obj, f"cannot talk to {self.target}: {message}")
        if status in (401, 403):
            credentials = (
                f"the token in {self.cluster.token_env}"
                if self.cluster.token_env
                else f"the credentials of {self.target}"
            )
            return SourceAuthError(
                SYSTEM, obj, f"access refused ({status}: {message}); check {credentials}"
            )
        if status == 404:
            return SourceNotFoundError(SYSTEM, obj, f"not found (404): {message}")
        # 410: a continue token expired mid-listing; listing again from the start works.
        if status >= 500 or status in (410, 429):
            return TransientSourceError(SYSTEM, obj, f"server error {status}: {message}")
        return SourceError(SYSTEM, obj, f"request refused ({status}): {message}")

    def call(self, what: str, method: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        """Call a generated API method, returning the decoded JSON answer.

        Args:
            what: what is asked, for error messages (`pods`, `deployment shop/web`).
            method: a bound method of a `kubernetes.client` API class.
            *args: its positional arguments.
            **kwargs: its keyword arguments.

        Raises:
            TransientSourceError: still failing after `retries` retries (5xx, 429, network).
            SourceError: any other failure, typed by `errors.py`.
        """
        import urllib3
        from kubernetes.client.exceptions import ApiException

        obj = f"cluster {self.cluster.name} {what}"
        attempt = 0
        while True:
            self.requests_made += 1
            try:
                response = method(
                    *args, _preload_content=False, _request_timeout=self.timeout_seconds, **kwargs
                )
                try:
                    body = response.data
                finally:
                    response.release_conn()
                content_type = response.headers.get("Content-Type", "")
                return parse_json(SYSTEM, obj, body, content_type)
            except (ApiException, urllib3.exceptions.HTTPError) as raw:
                error = self._classify(raw, obj)
                if not isinstance(error, TransientSourceError) or attempt >= self.retries:
                    raise error from None
                self._sleep(self.backoff_seconds * 2**attempt)
                attempt += 1

    def _list(self, plural: str, namespace: str | None = None) -> list[dict[str, Any]]:
        """Every item of a listing, page by page (`limit` + `continue`)."""
        from kubernetes import client

        api_class, singular = LISTS[plural]
        api = getattr(client, api_class)(self.api_client)
        if plural == "nodes":
            method, args = api.list_node, ()
        elif namespace:
            method, args = getattr(api, f"list_namespaced_{singular}"), (namespace,)
        else:
            method, args = getattr(api, f"list_{singular}_for_all_namespaces"), ()
        what = f"{plural} in namespace {namespace}" if namespace else plural
        items: list[dict[str, Any]] = []
        paging: dict[str, Any] = {"limit": self.page_size}
        while True:
            page = self.call(what, method, *args, **paging)
            items.extend(page.get("items") or [])
            paging["_continue"] = (page.get("metadata") or {}).get("continue")
            if not paging["_continue"]:
                return items

    def version(self) -> str:
        """The API server's gitVersion, e.g. `v1.29.4`."""
        from kubernetes import client

        answer = self.call("version", client.VersionApi(self.api_client).get_code)
        return str(answer.get("gitVersion", ""))

    def nodes(self) -> list[KubeNode]:
        """Every node with its capacity, allocatable resources and conditions."""
        return parse_items(f"cluster {self.cluster.name} node", self._list("nodes"), parse_node)

    def _deployment_of(self, namespace: str | None) -> dict[tuple[str, str], str | None]:
        """(namespace, ReplicaSet) -> owning Deployment, or {} when ReplicaSets may not be
        read (the pods then fall back to stripping the pod-template-hash suffix)."""
        try:
            items = self._list("replicasets", namespace)
        except SourceAuthError:
            return {}
        owners = {}
        for item in items:
            meta, owner = item.get("metadata") or {}, controller_of(item)
            deployment = owner.get("name") if owner and owner.get("kind") == "Deployment" else None
            owners[(meta.get("namespace", ""), meta.get("name", ""))] = deployment
        return owners

    def pods(self, namespace: str | None = None) -> list[KubePod]:
        """Pods of one namespace or all, with owners resolved up to their Deployment."""
        items = self._list("pods", namespace)
        owners = self._deployment_of(namespace)
        return parse_items(f"cluster {self.cluster.name} pod", items, parse_pod, owners)

    def deployments(self, namespace: str | None = None) -> list[KubeDeployment]:
        """Deployments of one namespace or all, with their rollout status."""
        items = self._list("deployments", namespace)
        return parse_items(f"cluster {self.cluster.name} deployment", items, parse_deployment)

    def events(
        self, namespace: str | None = None, since: dt.datetime | None = None
    ) -> list[KubeEvent]:
        """Events of one namespace or all, last seen at or after `since` when given.

        The API cannot filter events by time, so `since` is applied here; an event without
        any timestamp is left out when `since` is given.
        """
        if since is not None and since.tzinfo is None:
            raise ValueError(f"since must be timezone-aware, got {since.isoformat()}")
        items = self._list("events", namespace)
        events = parse_items(f"cluster {self.cluster.name} event", items, parse_event)
        if since is None:
            return events
        return [e for e in events if e.last_timestamp is not None and e.last_timestamp >= since]


class KubernetesResource(dg.ConfigurableResource):
    """The clusters of the clusters file. Unset fields come from TIMBEL_CLUSTERS_FILE."""

    clusters_file: str | None = None
    kubeconfig: str | None = None
    timeout_seconds: float = 30.0

    def _path(self) -> Path:
        if self.clusters_file:
            return Path(self.clusters_file)

        path = get_settings().timbel_clusters_file
        if path is None:
            raise SourceNotConfiguredError(
                "Kubernetes clusters are not configured: set TIMBEL_CLUSTERS_FILE to a YAML "
                "file listing them (name, group, context or api_url + token_env)"
            )
        return Path(path)

    def clusters(self) -> list[ClusterConfig]:
        """The clusters of the clusters file, checked."""
        return load_clusters(self._path())

    def client(self, name: str) -> KubernetesClient:
        """A client for the cluster called `name` in the clusters file.

        Raises:
            SourceNotFoundError: no cluster of that name; the message lists the known ones.
            SourceNotConfiguredError: no clusters file, or the cluster's credentials are missing.
        """
        path = self._path()
        clusters = {c.name: c for c in load_clusters(path)}
        if name not in clusters:
            known = ", ".join(sorted(clusters)) or "none"
            raise SourceNotFoundError(
                SYSTEM, f"cluster {name}", f"not in the clusters file {path}; known: {known}"
            )
        return KubernetesClient(clusters[name], self.timeout_seconds, kubeconfig=self.kubeconfig)
