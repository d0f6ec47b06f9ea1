"""The in-memory object store behind the fake Kubernetes API server.

It applies the API server's rules that clients notice: a global resourceVersion bumped on
every write, uid/creationTimestamp/generation set by the server, 409 on a stale update or a
duplicate create, 422 on an invalid name, merge patches and server-side apply, status kept
apart from the main resource for kinds with a status subresource, keyset pagination with
opaque `continue` tokens, and label/field selectors. Errors are `ApiError`s that render as
`kind: Status` objects.
"""

from __future__ import annotations

import base64
import copy
import datetime as dt
import hashlib
import json
import re
import secrets
import threading
import uuid
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Kind:
    group_version: str  # "v1" for the core group
    plural: str
    kind: str
    namespaced: bool = True
    status: bool = False  # has a status subresource: main-resource writes keep the stored status

    @property
    def group(self) -> str:
        return self.group_version.rpartition("/")[0]

    @property
    def qualified(self) -> str:
        """`deployments.apps`, `pods`: how the real API names a resource in messages."""
        return f"{self.plural}.{self.group}" if self.group else self.plural


# Add a row to serve another kind; custom resources are rows like any other.
KINDS: tuple[Kind, ...] = (
    Kind("v1", "namespaces", "Namespace", namespaced=False, status=True),
    Kind("v1", "nodes", "Node", namespaced=False, status=True),
    Kind("v1", "pods", "Pod", status=True),
    Kind("v1", "events", "Event"),
    Kind("v1", "resourcequotas", "ResourceQuota", status=True),
    Kind("v1", "limitranges", "LimitRange"),
    Kind("v1", "services", "Service", status=True),
    Kind("v1", "configmaps", "ConfigMap"),
    Kind("v1", "secrets", "Secret"),
    Kind("v1", "serviceaccounts", "ServiceAccount"),
    Kind("apps/v1", "deployments", "Deployment", status=True),
    Kind("apps/v1", "replicasets", "ReplicaSet", status=True),
    Kind("apps/v1", "statefulsets", "StatefulSet", status=True),
    Kind("apps/v1", "daemonsets", "DaemonSet", status=True),
    Kind("batch/v1", "jobs", "Job", status=True),
    Kind("batch/v1", "cronjobs", "CronJob", status=True),
    Kind("policy/v1", "poddisruptionbudgets", "PodDisruptionBudget", status=True),
    Kind("networking.k8s.io/v1", "networkpolicies", "NetworkPolicy"),
    Kind("networking.k8s.io/v1", "ingresses", "Ingress", status=True),
    Kind("rbac.authorization.k8s.io/v1", "roles", "Role"),
    Kind("rbac.authorization.k8s.io/v1", "rolebindings", "RoleBinding"),
    Kind("rbac.authorization.k8s.io/v1", "clusterroles", "ClusterRole", namespaced=False),
    Kind(
        "rbac.authorization.k8s.io/v1",
        "clusterrolebindings",
        "ClusterRoleBinding",
        namespaced=False,
    ),
    Kind("autoscaling/v2", "horizontalpodautoscalers", "HorizontalPodAutoscaler", status=True),
    Kind("autoscaling.k8s.io/v1", "verticalpodautoscalers", "VerticalPodAutoscaler", status=True),
)
STATUS_ON_CREATE = {"Pod": {"phase": "Pending"}, "Namespace": {"phase": "Active"}}
SUBDOMAIN = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*")
LABEL = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?")
HASH_ALPHABET = "bcdfghjklmnpqrstvwxz2456789"  # what the API server uses for generated names


Ref = tuple[Kind, str | None, str]  # kind, namespace (None when cluster-scoped), name


class ApiError(Exception):
    """An answer other than 2xx, rendered like the real API as a `kind: Status` object."""

    def __init__(self, code: int, reason: str, message: str, details: dict | None = None) -> None:
        super().__init__(message)
        self.code, self.reason, self.message, self.details = code, reason, message, details

    def status(self) -> dict[str, Any]:
        body = {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure"}
        body.update(message=self.message, reason=self.reason, code=self.code)
        if self.details is not None:
            body["details"] = self.details
        return body


def refuse(code: int, reason: str, kind: Kind, name: str, problem: str) -> ApiError:
    """An error about one object, worded like the API: `deployments.apps "web" not found`."""
    details = {"name": name, "group": kind.group, "kind": kind.plural}
    return ApiError(code, reason, f'{kind.qualified} "{name}" {problem}', details)


def not_found(kind: Kind, name: str) -> ApiError:
    return refuse(404, "NotFound", kind, name, "not found")


def bad_request(message: str) -> ApiError:
    return ApiError(400, "BadRequest", message)


def invalid(kind: Kind, name: str, field: str, problem: str) -> ApiError:
    cause = {"reason": "FieldValueInvalid", "message": problem, "field": field}
    details = {"name": name, "group": kind.group, "kind": kind.kind, "causes": [cause]}
    label = f"{kind.kind}.{kind.group}" if kind.group else kind.kind
    return ApiError(422, "Invalid", f'{label} "{name}" is invalid: {field}: {problem}', details)


def merge_patch(target: Any, patch: Any) -> Any:
    """RFC 7386 JSON merge patch (strategic merge is treated the same way)."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    result = dict(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = merge_patch(result.get(key), value)
    return result


def _selector(text: str, kind: str) -> list[tuple[str, str, str]]:
    """`a=b,c!=d,e,!f` -> [(key, op, value)]; set-based selectors are refused like bad ones."""
    requirements = []
    for part in (p.strip() for p in text.split(",") if p.strip()):
        if found := re.fullmatch(r"([\w./-]+)\s*(==|=|!=)\s*([\w./-]*)", part):
            key, op, value = found.groups()
            requirements.append((key, "!=" if op == "!=" else "=", value))
        elif kind == "label" and (found := re.fullmatch(r"(!?)([\w./-]+)", part)):
            requirements.append((found.group(2), found.group(1) or "exists", ""))
        else:
            raise bad_request(f"unable to parse requirement: {part!r}")
    return requirements


def _matches(obj: dict, labels: list, fields: list) -> bool:
    own = obj.get("metadata", {}).get("labels") or {}
    for key, op, value in labels:
        if (op == "=" and own.get(key) != value) or (op == "!=" and own.get(key) == value):
            return False
        if (op == "exists") != (key in own) and op in ("exists", "!"):
            return False
    for key, op, value in fields:
        actual: Any = obj
        for part in key.split("."):
            actual = actual.get(part) if isinstance(actual, dict) else None
        actual = "" if actual is None else str(actual)
        if (actual == value) != (op == "="):
            return False
    return True


def template_hash(deployment: dict) -> str:
    """A stable pod-template-hash for a Deployment's pod template."""
    template = json.dumps(deployment.get("spec", {}).get("template", {}), sort_keys=True)
    digest = hashlib.sha256(template.encode()).digest()
    return "".join(HASH_ALPHABET[b % len(HASH_ALPHABET)] for b in digest[:10])


class Store:
    """Objects keyed by (group/version, plural, namespace or "", name)."""

    def __init__(self) -> None:
        self.objects: dict[tuple[str, str, str, str], dict[str, Any]] = {}
        self.revision = 0
        self.lock = threading.RLock()

    def kind(self, group_version: str, plural: str) -> Kind | None:
        return next(
            (k for k in KINDS if (k.group_version, k.plural) == (group_version, plural)), None
        )

    def kind_named(self, kind: str) -> Kind:
        return next(k for k in KINDS if k.kind == kind)

    def _stamp(self, kind: Kind, obj: dict, old: dict | None) -> dict:
        self.revision += 1
        meta = obj.setdefault("metadata", {})
        meta["resourceVersion"] = str(self.revision)
        obj["apiVersion"], obj["kind"] = kind.group_version, kind.kind
        if old is None:
            meta.setdefault("uid", str(uuid.uuid4()))
            meta.setdefault(
                "creationTimestamp", dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
            )
            meta.setdefault("generation", 1)
        else:
            for field in ("uid", "creationTimestamp", "generation"):
                if field in old["metadata"]:
                    meta[field] = old["metadata"][field]
            if obj.get("spec") != old.get("spec"):
                meta["generation"] = meta.get("generation", 0) + 1
        return obj

    def _key(self, kind: Kind, namespace: str | None, name: str) -> tuple[str, str, str, str]:
        return (kind.group_version, kind.plural, namespace if kind.namespaced else "", name)

    # -- the API's verbs ------------------------------------------------------------------------
    def list(self, kind: Kind, namespace: str | None, query: dict[str, str]) -> dict[str, Any]:
        labels = _selector(query.get("labelSelector", ""), "label")
        fields = _selector(query.get("fieldSelector", ""), "field")
        limit, token = int(query.get("limit") or 0), query.get("continue", "")
        with self.lock:
            keys = sorted(
                k
                for k, obj in self.objects.items()
                if k[:2] == (kind.group_version, kind.plural)
                and (not namespace or k[2] == namespace)
                and _matches(obj, labels, fields)
            )
            if token:
                try:
                    after = tuple(json.loads(base64.urlsafe_b64decode(token))["start"])
                except (ValueError, KeyError, TypeError):
                    raise bad_request("continue key is not valid") from None
                keys = [k for k in keys if k[2:] > after]
            page = keys[:limit] if limit else keys
            meta: dict[str, Any] = {"resourceVersion": str(self.revision)}
            if len(page) < len(keys):
                start = json.dumps({"start": list(page[-1][2:]), "rv": self.revision})
                meta["continue"] = base64.urlsafe_b64encode(start.encode()).decode()
                meta["remainingItemCount"] = len(keys) - len(page)
            items = [copy.deepcopy(self.objects[k]) for k in page]
        for item in items:  # a typed list's items carry no kind or apiVersion
            item.pop("kind", None)
            item.pop("apiVersion", None)
        return {
            "kind": f"{kind.kind}List",
            "apiVersion": kind.group_version,
            "metadata": meta,
            "items": items,
        }

    def read(self, kind: Kind, namespace: str | None, name: str) -> dict[str, Any]:
        with self.lock:
            obj = self.objects.get(self._key(kind, namespace, name))
            if obj is None:
                raise not_found(kind, name)
            return copy.deepcopy(obj)

    def create(self, kind: Kind, namespace: str | None, obj: dict, dry_run: bool = False) -> dict:
        meta = obj.setdefault("metadata", {})
        if not meta.get("name") and meta.get("generateName"):
            suffix = "".join(secrets.choice(HASH_ALPHABET) for _ in range(5))
            meta["name"] = meta["generateName"] + suffix
        self._check(kind, namespace, obj)
        if kind.status:
            obj["status"] = copy.deepcopy(STATUS_ON_CREATE.get(kind.kind, {}))
        with self.lock:
            key = self._key(kind, namespace, meta["name"])
            if key in self.objects:
                raise refuse(409, "AlreadyExists", kind, meta["name"], "already exists")
            meta.pop("resourceVersion", None)
            return self._save(kind, key, obj, None, dry_run)

    def replace(self, ref: Ref, obj: dict, sub: str = "", dry_run: bool = False) -> dict:
        kind, namespace, name = ref
        with self.lock:
            old = self.objects.get(self._key(*ref))
            if old is None:
                raise not_found(kind, name)
            self._check(kind, namespace, obj, name)
            wanted = obj["metadata"].get("resourceVersion")
            if wanted and wanted != old["metadata"]["resourceVersion"]:
                error = refuse(409, "Conflict", kind, name, "")
                error.message = (
                    f'Operation cannot be fulfilled on {kind.qualified} "{name}": the object has '
                    "been modified; please apply your changes to the latest version and try again"
                )
                raise error
            if sub == "status":
                obj = {**copy.deepcopy(old), "status": obj.get("status", {})}
            elif kind.status:
                obj["status"] = copy.deepcopy(old.get("status", {}))
            return self._save(kind, self._key(*ref), obj, old, dry_run)

    def patch(self, ref: Ref, body: Any, content_type: str, query: dict, sub: str = "") -> dict:
        """JSON merge patch; strategic merge is treated the same way; server-side apply
        creates what is missing and merges the rest. JSON patch (RFC 6902) is refused."""
        kind, namespace, name = ref
        dry_run = query.get("dryRun") == "All"
        if "json-patch" in content_type:
            message = f"the fake API server does not accept {content_type}"
            raise ApiError(415, "UnsupportedMediaType", message)
        with self.lock:
            old = self.objects.get(self._key(*ref))
            if "apply-patch" in content_type:
                if not query.get("fieldManager"):
                    problem = "fieldManager: Required value: is required for apply patch"
                    raise ApiError(
                        422, "Invalid", f'PatchOptions.meta.k8s.io "" is invalid: {problem}'
                    )
                if old is None:
                    return self.create(kind, namespace, copy.deepcopy(body), dry_run)
            if old is None:
                raise not_found(kind, name)
            return self.replace(ref, merge_patch(old, body), sub, dry_run)

    def delete(self, ref: Ref, dry_run: bool = False) -> dict:
        kind, _namespace, name = ref
        with self.lock:
            obj = self.read(*ref)
            if not dry_run:
                del self.objects[self._key(*ref)]
                if kind.kind == "Namespace":  # what the namespace controller does, at once
                    for key in [k for k in self.objects if k[2] == name]:
                        del self.objects[key]
        details = {"name": name, "group": kind.group, "kind": kind.plural}
        status = {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success"}
        return {**status, "details": {**details, "uid": obj["metadata"].get("uid")}}

    def _check(self, kind: Kind, namespace: str | None, obj: dict, name: str | None = None) -> None:
        meta = obj.get("metadata") or {}
        given = meta.get("name") or ""
        if not given:
            raise invalid(
                kind, "", "metadata.name", "Required value: name or generateName is required"
            )
        pattern = LABEL if kind.kind == "Namespace" else SUBDOMAIN
        if not pattern.fullmatch(given) or len(given) > (63 if pattern is LABEL else 253):
            problem = (
                f'Invalid value: "{given}": a lowercase RFC 1123 name must consist of lower '
                "case alphanumeric characters, '-' or '.', and must start and end with one"
            )
            raise invalid(kind, given, "metadata.name", problem)
        if name is not None and given != name:
            raise bad_request("the name of the object does not match the name on the URL")
        if kind.namespaced and meta.get("namespace", namespace) != namespace:
            raise bad_request(
                "the namespace of the provided object does not match the namespace sent on "
                "the request"
            )
        if kind.namespaced:
            meta["namespace"] = namespace
        for field, value in (("apiVersion", kind.group_version), ("kind", kind.kind)):
            if obj.get(field, value) != value:
                raise bad_request(f"{field} {obj[field]!r} does not match the URL ({value})")

    def _save(self, kind: Kind, key: tuple, obj: dict, old: dict | None, dry_run: bool) -> dict:
        obj = self._stamp(kind, copy.deepcopy(obj), old)
        if dry_run:
            self.revision -= 1
            return obj
        self.objects[key] = obj
        self.after_write(kind, key)
        return copy.deepcopy(obj)

    def after_write(self, kind: Kind, key: tuple) -> None:
        """Called after every stored write; the server hooks rollouts here."""

    # -- for tests ---------------------------------------------------------------------------
    def put(self, obj: dict[str, Any]) -> dict[str, Any]:
        """Store `obj` as given (status included), stamped like a server write."""
        kind = next(
            k
            for k in KINDS
            if (k.group_version, k.kind) == (obj.get("apiVersion"), obj.get("kind"))
        )
        meta = obj.setdefault("metadata", {})
        if kind.namespaced:
            meta.setdefault("namespace", "default")
        with self.lock:
            key = self._key(kind, meta.get("namespace"), meta["name"])
            return self._save(kind, key, obj, self.objects.get(key), False)

    def get(self, kind: str, name: str, namespace: str | None = None) -> dict[str, Any] | None:
        """The stored object of `kind` (`Deployment`, `Pod`, ...), or None."""
        found = self.kind_named(kind)
        with self.lock:
            return copy.deepcopy(self.objects.get(self._key(found, namespace, name)))
