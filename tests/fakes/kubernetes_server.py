"""A stateful loopback Kubernetes API server for the official kubernetes client.

It speaks the real REST layout (`/api/v1/namespaces/{ns}/pods/{name}`,
`/apis/apps/v1/...`), minimal discovery (`/version`, `/api`, `/apis`, resource lists), and
answers errors with `kind: Status` objects. The object store and its rules live in
`kubernetes_store.py`. Tests can seed objects (`put`, `put_deployment`), drive rollouts
(`complete_rollout`, `fail_rollout`, `auto_rollout=True`), require a bearer token and inject
failures (`fail_next`).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import socket
import threading
from collections import deque
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

import yaml

from tests.fakes.kubernetes_store import HASH_ALPHABET, KINDS, ApiError, Kind, Store, template_hash
from tests.fakes.loopback import LoopbackServer

REASONS = {
    400: "BadRequest",
    401: "Unauthorized",
    403: "Forbidden",
    404: "NotFound",
    405: "MethodNotAllowed",
    409: "Conflict",
    410: "Expired",
    422: "Invalid",
    429: "TooManyRequests",
    500: "InternalError",
    503: "ServiceUnavailable",
    504: "Timeout",
}
NO_RESOURCE = "the server could not find the requested resource"


@dataclass
class Fault:
    status: int = 500
    message: str = "Internal error occurred: injected by the test"
    path_contains: str = ""
    retry_after: int | None = None
    drop: bool = False  # close the connection without an answer


def _now() -> str:
    return dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _condition(kind: str, status: str, reason: str, message: str) -> dict[str, str]:
    return {"type": kind, "status": status, "reason": reason, "message": message,
            "lastUpdateTime": _now(), "lastTransitionTime": _now()}  # fmt: skip


def owner_reference(obj: dict[str, Any]) -> dict[str, Any]:
    """A controller ownerReference pointing at a stored object."""
    meta = obj["metadata"]
    return {"apiVersion": obj["apiVersion"], "kind": obj["kind"], "name": meta["name"],
            "uid": meta["uid"], "controller": True, "blockOwnerDeletion": True}  # fmt: skip


class FakeKubernetes(Store, LoopbackServer):
    """The store plus its HTTP face. `requests` records (method, path, query) of every call."""

    def __init__(
        self,
        token: str | None = None,
        git_version: str = "v1.29.4",
        auto_rollout: bool = False,
        rollout_seconds: float = 0.0,
        failing_images: tuple[str, ...] = (),
    ) -> None:
        Store.__init__(self)
        LoopbackServer.__init__(self)
        self.token, self.git_version, self.auto_rollout = token, git_version, auto_rollout
        # With auto_rollout: a write completes the rollout after this long (as a controller
        # would), or fails it when the new template uses one of `failing_images`.
        self.rollout_seconds, self.failing_images = rollout_seconds, failing_images
        self.faults: deque[Fault] = deque()
        self.requests: list[tuple[str, str, str]] = []

    def handler(self) -> type[BaseHTTPRequestHandler]:
        return _handler(self)

    def fail_next(self, status: int = 500, count: int = 1, **fault: Any) -> None:
        """Answer the next `count` matching requests with `status` (a Status object)."""
        self.faults.extend(Fault(status=status, **fault) for _ in range(count))

    # -- rollouts ------------------------------------------------------------------------------
    def after_write(self, kind: Kind, key: tuple) -> None:
        if not (self.auto_rollout and kind.kind == "Deployment"):
            return
        deployment = self.objects[key]
        images = {c.get("image") for c in deployment["spec"]["template"]["spec"]["containers"]}
        failed = bool(images & set(self.failing_images))
        if self.rollout_seconds <= 0:
            self._roll(
                deployment, failed=failed, reason="ProgressDeadlineExceeded" if failed else ""
            )
            return
        namespace, name = key[2], key[3]
        timer = threading.Timer(
            self.rollout_seconds,
            (self.fail_rollout if failed else self.complete_rollout),
            args=(namespace, name),
        )
        timer.daemon = True
        timer.start()

    def _roll(self, deployment: dict[str, Any], failed: bool, reason: str = "") -> None:
        replicas = deployment.get("spec", {}).get("replicas", 1)
        name = f"{deployment['metadata']['name']}-{template_hash(deployment)}"
        status: dict[str, Any] = {
            "observedGeneration": deployment["metadata"].get("generation", 1),
            "replicas": replicas,
            "updatedReplicas": replicas,
            "readyReplicas": replicas,
            "availableReplicas": replicas,
        }
        available = _condition(
            "Available", "True", "MinimumReplicasAvailable", "Deployment has minimum availability."
        )
        if failed:
            status.update(replicas=replicas + 1, updatedReplicas=1, unavailableReplicas=1)
            message = f'ReplicaSet "{name}" has timed out progressing.'
            progressing = _condition("Progressing", "False", reason, message)
        else:
            message = f'ReplicaSet "{name}" has successfully progressed.'
            progressing = _condition("Progressing", "True", "NewReplicaSetAvailable", message)
        deployment["status"] = {**status, "conditions": [available, progressing]}

    def _rollout(self, namespace: str, name: str, failed: bool, reason: str = "") -> None:
        with self.lock:
            deployment = self.objects[("apps/v1", "deployments", namespace, name)]
            self._roll(deployment, failed, reason)
            self.revision += 1
            deployment["metadata"]["resourceVersion"] = str(self.revision)

    def complete_rollout(self, namespace: str, name: str) -> None:
        """Report the Deployment's current generation as fully rolled out and available."""
        self._rollout(namespace, name, failed=False)

    def fail_rollout(
        self, namespace: str, name: str, reason: str = "ProgressDeadlineExceeded"
    ) -> None:
        """Report the rollout as stuck: Progressing False with `reason`."""
        self._rollout(namespace, name, failed=True, reason=reason)

    def put_deployment(
        self,
        namespace: str,
        name: str,
        replicas: int = 2,
        image: str = "registry.example.com/app:1.0.0",
        node: str | None = None,
    ) -> dict[str, Any]:
        """Seed a rolled-out Deployment with its ReplicaSet and running pods, linked by
        ownerReferences and pod-template-hash labels as the controllers would do it."""
        labels = {"app": name}
        resources = {"requests": {"cpu": "250m", "memory": "256Mi"},
                     "limits": {"cpu": "1", "memory": "512Mi"}}  # fmt: skip
        container = {"name": name, "image": image, "resources": resources}
        template = {"metadata": {"labels": labels}, "spec": {"containers": [container]}}
        spec = {"replicas": replicas, "selector": {"matchLabels": labels}, "template": template}
        meta = {"name": name, "namespace": namespace, "labels": labels}
        deployment = self.put(
            {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": meta, "spec": spec}
        )
        self.complete_rollout(namespace, name)
        pod_hash = template_hash(deployment)
        hashed = {**labels, "pod-template-hash": pod_hash}
        counts = {"replicas": replicas, "readyReplicas": replicas, "availableReplicas": replicas}
        replica_set = self.put(
            {
                "apiVersion": "apps/v1",
                "kind": "ReplicaSet",
                "metadata": {"name": f"{name}-{pod_hash}", "namespace": namespace,
                             "labels": hashed, "ownerReferences": [owner_reference(deployment)]},
                "spec": {**spec, "selector": {"matchLabels": hashed}},
                "status": counts,
            }
        )  # fmt: skip
        for index in range(replicas):
            digest = hashlib.sha256(f"{name}/{index}".encode()).digest()
            suffix = "".join(HASH_ALPHABET[b % len(HASH_ALPHABET)] for b in digest[:5])
            running = {"name": name, "image": image, "ready": True, "restartCount": 0,
                       "state": {"running": {"startedAt": _now()}}}  # fmt: skip
            self.put(
                {
                    "apiVersion": "v1",
                    "kind": "Pod",
                    "metadata": {"name": f"{name}-{pod_hash}-{suffix}", "namespace": namespace,
                                 "labels": hashed,
                                 "ownerReferences": [owner_reference(replica_set)]},
                    "spec": {**template["spec"], "nodeName": node},
                    "status": {"phase": "Running", "containerStatuses": [running],
                               "conditions": [{"type": "Ready", "status": "True"}]},
                }
            )  # fmt: skip
        return self.get("Deployment", name, namespace) or {}

    # -- HTTP ------------------------------------------------------------------------------------
    def discovery(self, parts: list[str]) -> dict[str, Any] | None:
        if parts == ["version"]:
            major, minor = self.git_version.lstrip("v").split(".")[:2]
            return {"major": major, "minor": minor, "gitVersion": self.git_version,
                    "gitTreeState": "clean", "goVersion": "go1.21.9", "compiler": "gc",
                    "platform": "linux/amd64"}  # fmt: skip
        if parts == ["api"]:
            return {"kind": "APIVersions", "versions": ["v1"], "serverAddressByClientCIDRs": []}
        versions: dict[str, list[str]] = {}
        for kind in KINDS:
            if kind.group and kind.group_version not in versions.setdefault(kind.group, []):
                versions[kind.group].append(kind.group_version)

        def group(name: str) -> dict[str, Any]:
            listed = [{"groupVersion": gv, "version": gv.split("/")[1]} for gv in versions[name]]
            return {"name": name, "versions": listed, "preferredVersion": listed[0]}

        if parts == ["apis"]:
            groups = [group(name) for name in versions]
            return {"kind": "APIGroupList", "apiVersion": "v1", "groups": groups}
        if len(parts) == 2 and parts[0] == "apis" and parts[1] in versions:
            return {"kind": "APIGroup", "apiVersion": "v1", **group(parts[1])}
        gv = (
            "v1" if parts == ["api", "v1"] else "/".join(parts[1:]) if parts[:1] == ["apis"] else ""
        )
        served = [k for k in KINDS if k.group_version == gv and len(parts) in (2, 3)]
        if not served:
            return None
        resources = []
        for kind in served:
            verbs = ["create", "delete", "deletecollection", "get", "list", "patch", "update"]
            common = {"singularName": kind.kind.lower(), "namespaced": kind.namespaced}
            resources.append({"name": kind.plural, **common, "kind": kind.kind, "verbs": verbs})
            if kind.status:
                resources.append({"name": f"{kind.plural}/status", **common, "kind": kind.kind,
                                  "verbs": ["get", "patch", "update"]})  # fmt: skip
        return {"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": gv,
                "resources": resources}  # fmt: skip

    def answer(
        self, method: str, path: str, query: dict[str, str], raw: bytes, content_type: str
    ) -> tuple[int, Any]:
        parts = [unquote(p) for p in path.strip("/").split("/") if p]
        if method == "GET" and (found := self.discovery(parts)) is not None:
            return 200, found
        if parts[:1] == ["api"] and len(parts) >= 3:
            gv, rest = parts[1], parts[2:]
        elif parts[:1] == ["apis"] and len(parts) >= 4:
            gv, rest = "/".join(parts[1:3]), parts[3:]
        else:
            raise ApiError(404, "NotFound", NO_RESOURCE)
        namespace = None
        if len(rest) >= 3 and rest[0] == "namespaces" and self.kind(gv, rest[2]):
            namespace, rest = rest[1], rest[2:]
        kind = self.kind(gv, rest[0])
        name, sub = [*rest, "", ""][1:3]
        if (
            kind is None
            or len(rest) > 3
            or sub not in ("", "status")
            or (namespace and not kind.namespaced)
            or (name and kind.namespaced and not namespace)
        ):
            raise ApiError(404, "NotFound", NO_RESOURCE)
        body: Any = None
        if method in ("POST", "PUT", "PATCH"):
            try:
                body = yaml.safe_load(raw) if "yaml" in content_type else json.loads(raw or b"null")
            except (ValueError, yaml.YAMLError) as error:
                raise ApiError(400, "BadRequest", f"the body is not valid: {error}") from None
            if not isinstance(body, dict) and "json-patch" not in content_type:
                raise ApiError(400, "BadRequest", "the body must be an object")
        dry_run = query.get("dryRun") == "All"
        if not name and method == "GET":
            if query.get("watch") in ("1", "true"):
                raise ApiError(405, "MethodNotAllowed", "the fake API server does not serve watch")
            return 200, self.list(kind, namespace, query)
        if not name and method == "POST" and (namespace or not kind.namespaced):
            return 201, self.create(kind, namespace, body, dry_run)
        if not name and method == "DELETE":
            items = self.list(kind, namespace, query)["items"]
            for item in items:
                self.delete((kind, item["metadata"].get("namespace"), item["metadata"]["name"]))
            return 200, {"kind": f"{kind.kind}List", "apiVersion": kind.group_version,
                         "metadata": {}, "items": items}  # fmt: skip
        if name and method == "GET":
            return 200, self.read(kind, namespace, name)
        ref = (kind, namespace, name)
        if name and method == "PUT":
            return 200, self.replace(ref, body, sub, dry_run)
        if name and method == "PATCH":
            existed = self.get(kind.kind, name, namespace) is not None
            return (200 if existed else 201), self.patch(ref, body, content_type, query, sub)
        if name and method == "DELETE" and not sub:
            return 200, self.delete(ref, dry_run)
        raise ApiError(405, "MethodNotAllowed", f"{method} is not supported on {path}")


def _handler(fake: FakeKubernetes) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: Any) -> None:  # keep test output quiet
            pass

        def _reply(self, status: int, body: Any, headers: dict[str, str] | None = None) -> None:
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            for key, value in (headers or {}).items():
                self.send_header(key, value)
            self.end_headers()
            self.wfile.write(data)

        def _handle(self, method: str) -> None:
            split = urlsplit(self.path)
            query = {k: v[-1] for k, v in parse_qs(split.query, keep_blank_values=True).items()}
            raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            with fake.lock:
                fake.requests.append((method, split.path, split.query))
                fault = next((f for f in fake.faults if f.path_contains in split.path), None)
                if fault:
                    fake.faults.remove(fault)
            if fault and fault.drop:
                self.close_connection = True
                self.connection.shutdown(socket.SHUT_RDWR)
                return None
            if fault:
                error = ApiError(fault.status, REASONS.get(fault.status, "Unknown"), fault.message)
                retry = {"Retry-After": str(fault.retry_after)} if fault.retry_after else None
                return self._reply(fault.status, error.status(), retry)
            if fake.token and self.headers.get("Authorization") != f"Bearer {fake.token}":
                return self._reply(401, ApiError(401, "Unauthorized", "Unauthorized").status())
            content_type = self.headers.get("Content-Type", "application/json")
            try:
                status, body = fake.answer(method, split.path, query, raw, content_type)
            except ApiError as error:
                status, body = error.code, error.status()
            return self._reply(status, body)

        def do_GET(self) -> None:
            self._handle("GET")

        def do_POST(self) -> None:
            self._handle("POST")

        def do_PUT(self) -> None:
            self._handle("PUT")

        def do_PATCH(self) -> None:
            self._handle("PATCH")

        def do_DELETE(self) -> None:
            self._handle("DELETE")

    return Handler
