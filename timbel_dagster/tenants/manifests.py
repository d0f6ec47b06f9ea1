"""The Kubernetes objects that make a tenant, built from a checked `TenantSpec`.

A tenant is a namespace named after it, with a ResourceQuota (CPU, memory, pods), a
LimitRange giving containers default requests and limits (so the quota's limits can be
enforced on pods that declare none), a NetworkPolicy that denies all traffic except within
the namespace, from the ingress controller's namespace and DNS to kube-system, and one
RoleBinding per user to a ClusterRole (`edit` by default). Every object carries the labels
`timbel.io/tenant` (which cost allocation reads back through kube-state-metrics'
`label_timbel_io_tenant`) and `app.kubernetes.io/managed-by: timbel`. Pure functions only.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from timbel_dagster.resources.kubernetes_records import parse_quantity

TENANT_LABEL = "timbel.io/tenant"
MANAGED_BY_LABEL = "app.kubernetes.io/managed-by"
MANAGED_BY = "timbel"
NAMESPACE_NAME_LABEL = "kubernetes.io/metadata.name"  # set by the API server since 1.21
DEFAULT_PODS = 100
DEFAULT_ROLE = "edit"
DEFAULT_INGRESS_NAMESPACE = "ingress-nginx"
QUOTA_NAME, LIMITS_NAME, POLICY_NAME = "tenant-quota", "tenant-limits", "default-deny"
# Container defaults, lowered to the tenant's whole quota when that is smaller.
DEFAULT_REQUEST = (0.1, 128 * 2**20)  # cores, bytes
DEFAULT_LIMIT = (0.5, 512 * 2**20)

DNS_LABEL = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?")
ROLE_NAME = re.compile(r"[a-z0-9]([-a-z0-9.:]*[a-z0-9])?")
RESERVED = ("default", "kube-system", "kube-public", "kube-node-lease")
BINARY = (("Ei", 2**60), ("Pi", 2**50), ("Ti", 2**40), ("Gi", 2**30), ("Mi", 2**20), ("Ki", 2**10))
# The API's quantity grammar: a signed decimal number, then a suffix or a decimal exponent.
QUANTITY = re.compile(r"[+-]?(\d+\.?\d*|\.\d+)([KMGTPE]i|[numkMGTPE]|[eE][+-]?\d+)?")
DECIMAL = (("E", 10**18), ("P", 10**15), ("T", 10**12), ("G", 10**9), ("M", 10**6), ("k", 10**3))


class TenantSpecError(ValueError):
    """A tenant's name, quantities, users or options are wrong; the message names which."""


@dataclass(frozen=True)
class TenantSpec:
    """A checked tenant: quantities are canonical Kubernetes quantities (`8`, `1500m`,
    `16Gi`), users sorted and unique."""

    name: str
    cpu: str
    memory: str
    users: tuple[str, ...]
    pods: int = DEFAULT_PODS
    role: str = DEFAULT_ROLE
    ingress_namespace: str = DEFAULT_INGRESS_NAMESPACE

    @property
    def cpu_cores(self) -> float:
        return parse_quantity(self.cpu)

    @property
    def memory_bytes(self) -> int:
        return int(parse_quantity(self.memory))


def render_cpu(cores: float) -> str:
    """Cores as a canonical quantity: whole cores as `8`, the rest in millicores (`1500m`)."""
    millis = round(cores * 1000)
    return str(millis // 1000) if millis % 1000 == 0 else f"{millis}m"


def render_memory(size: int) -> str:
    """Bytes in the unit that holds them exactly in the fewest digits: `16Gi`, `8G`, `1001`
    (binary units win a tie)."""
    candidates = [str(size)]
    candidates += [f"{size // f}{suffix}" for suffix, f in (*BINARY, *DECIMAL) if size % f == 0]
    return min(candidates, key=len)


def _quantity(what: str, value: object, example: str) -> Decimal:
    """The exact value of a quantity, refusing what the API would refuse (`16 Gi`)."""
    from kubernetes.utils import parse_quantity as exact

    text = str(value)
    try:
        if not QUANTITY.fullmatch(text):
            raise ValueError(text)
        parse_quantity(text)  # our checks: no NaN, padding, "1_000"
        return Decimal(exact(text))
    except (ValueError, ArithmeticError):
        raise TenantSpecError(
            f"{what} {value!r} is not a Kubernetes quantity ({example})"
        ) from None


def _cpu(value: object) -> str:
    example = "for example 8, 1.5 or 500m"
    cores = _quantity("cpu", value, example)
    if cores <= 0:
        raise TenantSpecError(f"cpu {value!r} must be more than 0 ({example})")
    if cores * 1000 != (cores * 1000).to_integral_value():
        raise TenantSpecError(f"cpu {value!r} is finer than 1m, a thousandth of a core")
    return render_cpu(float(cores))


def _memory(value: object) -> str:
    example = "for example 16Gi, 512Mi or 8G"
    size = _quantity("memory", value, example)
    if size < 1:
        raise TenantSpecError(f"memory {value!r} must be at least one byte ({example})")
    if size != size.to_integral_value():
        raise TenantSpecError(f"memory {value!r} is not a whole number of bytes ({example})")
    return render_memory(int(size))


def _dns_label(what: str, value: str) -> str:
    if not isinstance(value, str) or not DNS_LABEL.fullmatch(value) or len(value) > 63:
        raise TenantSpecError(
            f"{what} {value!r} is not a DNS-1123 label: at most 63 lower-case letters, digits "
            "and '-', starting and ending with a letter or digit"
        )
    return value


def tenant_spec(
    name: str,
    cpu: object,
    memory: object,
    users: list[str] | tuple[str, ...],
    *,
    pods: int = DEFAULT_PODS,
    role: str = DEFAULT_ROLE,
    ingress_namespace: str = DEFAULT_INGRESS_NAMESPACE,
) -> TenantSpec:
    """Check a tenant's settings and make its quantities canonical.

    Args:
        name: the tenant and its namespace; a DNS-1123 label, not `default` or `kube-*`.
        cpu: cores for requests and limits (`8`, `1.5`, `500m`).
        memory: bytes for requests and limits (`16Gi`, `8G`).
        users: who gets `role` in the namespace (at least one).
        pods: the most pods the namespace may hold.
        role: the ClusterRole each user is bound to.
        ingress_namespace: the namespace of the ingress controller allowed in.

    Raises:
        TenantSpecError: the first thing that is wrong, quoting the value.
    """
    _dns_label("tenant name", name)
    if name in RESERVED or name.startswith("kube-"):
        raise TenantSpecError(
            f"tenant name {name!r} is reserved for Kubernetes ({', '.join(RESERVED)}, kube-*)"
        )
    _dns_label("ingress namespace", ingress_namespace)
    if name == ingress_namespace:
        raise TenantSpecError(f"tenant name {name!r} is the ingress controller's namespace")
    if not isinstance(role, str) or not ROLE_NAME.fullmatch(role):
        raise TenantSpecError(f"role {role!r} is not a ClusterRole name")
    if isinstance(pods, bool) or not isinstance(pods, int) or pods < 1:
        raise TenantSpecError(f"pods {pods!r} must be a whole number of at least 1")
    cleaned = sorted({u.strip() for u in users if u and u.strip()})
    if not cleaned:
        raise TenantSpecError("a tenant needs at least one user (--users a,b)")
    return TenantSpec(
        name, _cpu(cpu), _memory(memory), tuple(cleaned), pods, role, ingress_namespace
    )


def binding_name(role: str, user: str) -> str:
    """`timbel-edit-minji.kim`; names that are not valid object names are cleaned and given a
    hash of the original, so that two users never share a binding."""
    slug = re.sub(r"[^a-z0-9.-]+", "-", user.lower()).strip("-.") or "user"
    if slug != user:
        slug = f"{slug[:200]}-{hashlib.sha256(user.encode()).hexdigest()[:8]}"
    return f"timbel-{role.replace(':', '-')}-{slug}"


def _meta(spec: TenantSpec, name: str, namespaced: bool = True) -> dict[str, Any]:
    labels = {TENANT_LABEL: spec.name, MANAGED_BY_LABEL: MANAGED_BY}
    meta: dict[str, Any] = {"name": name, "labels": labels}
    if namespaced:
        meta["namespace"] = spec.name
    return meta


def _container_defaults(spec: TenantSpec) -> dict[str, Any]:
    # No `max`: the quota already caps the namespace, and a LimitRange that repeats the
    # quota would change with every quota change.
    cores, size = spec.cpu_cores, spec.memory_bytes

    def pair(cpu: float, memory: int) -> dict[str, str]:
        return {"cpu": render_cpu(min(cpu, cores)), "memory": render_memory(min(memory, size))}

    return {
        "type": "Container",
        "default": pair(*DEFAULT_LIMIT),
        "defaultRequest": pair(*DEFAULT_REQUEST),
    }


def _network_policy(spec: TenantSpec) -> dict[str, Any]:
    same_namespace = {"podSelector": {}}
    ingress_controller = {
        "namespaceSelector": {"matchLabels": {NAMESPACE_NAME_LABEL: spec.ingress_namespace}}
    }
    kube_system = {"namespaceSelector": {"matchLabels": {NAMESPACE_NAME_LABEL: "kube-system"}}}
    dns_ports = [{"protocol": "UDP", "port": 53}, {"protocol": "TCP", "port": 53}]
    return {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": _meta(spec, POLICY_NAME),
        "spec": {
            # Every pod is selected, so anything not allowed below is denied both ways.
            "podSelector": {},
            "policyTypes": ["Ingress", "Egress"],
            "ingress": [{"from": [same_namespace]}, {"from": [ingress_controller]}],
            "egress": [{"to": [same_namespace]}, {"to": [kube_system], "ports": dns_ports}],
        },
    }


def build_manifests(spec: TenantSpec) -> list[dict[str, Any]]:
    """The tenant's objects in the order they must be applied: the Namespace first."""
    hard = {
        "requests.cpu": spec.cpu,
        "limits.cpu": spec.cpu,
        "requests.memory": spec.memory,
        "limits.memory": spec.memory,
        "pods": str(spec.pods),
    }
    manifests: list[dict[str, Any]] = [
        {"apiVersion": "v1", "kind": "Namespace", "metadata": _meta(spec, spec.name, False)},
        {
            "apiVersion": "v1",
            "kind": "ResourceQuota",
            "metadata": _meta(spec, QUOTA_NAME),
            "spec": {"hard": hard},
        },
        {
            "apiVersion": "v1",
            "kind": "LimitRange",
            "metadata": _meta(spec, LIMITS_NAME),
            "spec": {"limits": [_container_defaults(spec)]},
        },
        _network_policy(spec),
    ]
    for user in spec.users:
        manifests.append(
            {
                "apiVersion": "rbac.authorization.k8s.io/v1",
                "kind": "RoleBinding",
                "metadata": _meta(spec, binding_name(spec.role, user)),
                "roleRef": {
                    "apiGroup": "rbac.authorization.k8s.io",
                    "kind": "ClusterRole",
                    "name": spec.role,
                },
                "subjects": [
                    {"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": user}
                ],
            }
        )
    return manifests


def describe(manifest: dict[str, Any]) -> str:
    """`ResourceQuota shop/tenant-quota`, `Namespace shop`: how messages name an object."""
    meta = manifest.get("metadata") or {}
    where = "/".join(filter(None, [meta.get("namespace"), meta.get("name")]))
    return f"{manifest.get('kind', '?')} {where or '?'}"
