"""Building a tenant's manifests from its settings: checks, canonical quantities, objects."""

from __future__ import annotations

import re

import pytest

from timbel_dagster.tenants.manifests import (
    TenantSpecError,
    binding_name,
    build_manifests,
    describe,
    render_cpu,
    render_memory,
    tenant_spec,
)

GI = 2**30


def by_kind(manifests: list[dict]) -> dict[str, list[dict]]:
    found: dict[str, list[dict]] = {}
    for manifest in manifests:
        found.setdefault(manifest["kind"], []).append(manifest)
    return found


@pytest.mark.parametrize(
    ("cpu", "canonical", "cores"),
    [("8", "8", 8.0), (8, "8", 8.0), ("1.5", "1500m", 1.5), ("500m", "500m", 0.5),
     ("2000m", "2", 2.0), ("0.001", "1m", 0.001), ("1e1", "10", 10.0)],
)  # fmt: skip
def test_cpu_is_made_canonical(cpu: object, canonical: str, cores: float) -> None:
    spec = tenant_spec("shop", cpu, "1Gi", ["a"])
    assert (spec.cpu, spec.cpu_cores) == (canonical, pytest.approx(cores))


@pytest.mark.parametrize(
    ("memory", "canonical", "size"),
    [("16Gi", "16Gi", 16 * GI), ("1024Mi", "1Gi", GI), ("1.5Gi", "1536Mi", 1536 * 2**20),
     ("8G", "8G", 8 * 10**9), ("16e9", "16G", 16 * 10**9), ("1000", "1k", 1000),
     ("1001", "1001", 1001)],
)  # fmt: skip
def test_memory_is_made_canonical(memory: str, canonical: str, size: int) -> None:
    spec = tenant_spec("shop", "1", memory, ["a"])
    assert (spec.memory, spec.memory_bytes) == (canonical, size)


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("cpu", "8 cores", "cpu '8 cores' is not a Kubernetes quantity (for example 8"),
        ("cpu", "eight", "cpu 'eight' is not a Kubernetes quantity"),
        ("cpu", "", "cpu '' is not a Kubernetes quantity"),
        ("cpu", "0", "cpu '0' must be more than 0"),
        ("cpu", "-2", "cpu '-2' must be more than 0"),
        ("cpu", "100u", "cpu '100u' is finer than 1m"),
        ("memory", "16GB", "memory '16GB' is not a Kubernetes quantity (for example 16Gi"),
        ("memory", "16 Gi", "memory '16 Gi' is not a Kubernetes quantity"),
        ("memory", "0", "memory '0' must be at least one byte"),
        ("memory", "0.1Gi", "memory '0.1Gi' is not a whole number of bytes"),
        ("memory", "500m", "memory '500m' must be at least one byte"),
    ],
)
def test_bad_quantities_are_refused_naming_the_value(field: str, value: str, message: str) -> None:
    settings = {"cpu": "8", "memory": "16Gi", field: value}
    with pytest.raises(TenantSpecError, match=re.escape(message)):
        tenant_spec("shop", settings["cpu"], settings["memory"], ["a"])


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("Shop", "'Shop' is not a DNS-1123 label"),
        ("shop_1", "'shop_1' is not a DNS-1123 label"),
        ("-shop", "'-shop' is not a DNS-1123 label"),
        ("shop-", "'shop-' is not a DNS-1123 label"),
        ("shop.team", "'shop.team' is not a DNS-1123 label"),
        ("", "'' is not a DNS-1123 label"),
        ("a" * 64, "is not a DNS-1123 label"),
        ("default", "'default' is reserved for Kubernetes"),
        ("kube-system", "'kube-system' is reserved"),
        ("kube-anything", "'kube-anything' is reserved"),
        ("ingress-nginx", "'ingress-nginx' is the ingress controller's namespace"),
    ],
)
def test_bad_names_are_refused(name: str, message: str) -> None:
    with pytest.raises(TenantSpecError, match=re.escape(message)):
        tenant_spec(name, "8", "16Gi", ["a"])


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"users": []}, "needs at least one user"),
        ({"users": [" ", ""]}, "needs at least one user"),
        ({"pods": 0}, "pods 0 must be a whole number of at least 1"),
        ({"role": "Edit Things"}, "role 'Edit Things' is not a ClusterRole name"),
        ({"ingress_namespace": "Ingress"}, "ingress namespace 'Ingress' is not a DNS-1123"),
    ],
)
def test_bad_options_are_refused(options: dict, message: str) -> None:
    users = options.pop("users", ["a"])
    with pytest.raises(TenantSpecError, match=re.escape(message)):
        tenant_spec("shop", "8", "16Gi", users, **options)


def test_a_63_character_name_is_allowed() -> None:
    assert tenant_spec("a" * 63, "1", "1Gi", ["a"]).name == "a" * 63


def test_users_are_sorted_and_unique() -> None:
    spec = tenant_spec("shop", "8", "16Gi", ["jaehyun.park", " minji.kim", "jaehyun.park"])
    assert spec.users == ("jaehyun.park", "minji.kim")


def test_the_manifests_of_a_tenant() -> None:
    spec = tenant_spec("shop", "8", "16Gi", ["minji.kim", "jaehyun.park"])
    manifests = build_manifests(spec)
    kinds = by_kind(manifests)
    assert [m["kind"] for m in manifests][:4] == [
        "Namespace", "ResourceQuota", "LimitRange", "NetworkPolicy"
    ]  # fmt: skip
    assert len(manifests) == 6 and len(kinds["RoleBinding"]) == 2
    for manifest in manifests:
        assert manifest["metadata"]["labels"] == {
            "timbel.io/tenant": "shop",
            "app.kubernetes.io/managed-by": "timbel",
        }
        assert manifest["metadata"].get("namespace", "shop") == "shop"
    assert "namespace" not in kinds["Namespace"][0]["metadata"]
    assert kinds["ResourceQuota"][0]["spec"]["hard"] == {
        "requests.cpu": "8", "limits.cpu": "8", "requests.memory": "16Gi",
        "limits.memory": "16Gi", "pods": "100",
    }  # fmt: skip
    assert kinds["LimitRange"][0]["spec"]["limits"] == [
        {"type": "Container", "default": {"cpu": "500m", "memory": "512Mi"},
         "defaultRequest": {"cpu": "100m", "memory": "128Mi"}}
    ]  # fmt: skip
    bindings = {m["metadata"]["name"]: m for m in kinds["RoleBinding"]}
    assert sorted(bindings) == ["timbel-edit-jaehyun.park", "timbel-edit-minji.kim"]
    minji = bindings["timbel-edit-minji.kim"]
    assert minji["roleRef"] == {
        "apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "edit"
    }  # fmt: skip
    assert minji["subjects"] == [
        {"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": "minji.kim"}
    ]


def test_the_network_policy_denies_all_but_the_allowances() -> None:
    spec = tenant_spec("shop", "8", "16Gi", ["a"], ingress_namespace="traefik")
    policy = by_kind(build_manifests(spec))["NetworkPolicy"][0]["spec"]
    assert policy["podSelector"] == {} and policy["policyTypes"] == ["Ingress", "Egress"]
    assert policy["ingress"] == [
        {"from": [{"podSelector": {}}]},
        {"from": [{"namespaceSelector": {"matchLabels": {
            "kubernetes.io/metadata.name": "traefik"}}}]},
    ]  # fmt: skip
    assert policy["egress"] == [
        {"to": [{"podSelector": {}}]},
        {"to": [{"namespaceSelector": {"matchLabels": {
            "kubernetes.io/metadata.name": "kube-system"}}}],
         "ports": [{"protocol": "UDP", "port": 53}, {"protocol": "TCP", "port": 53}]},
    ]  # fmt: skip


def test_container_defaults_never_exceed_a_small_quota() -> None:
    spec = tenant_spec("tiny", "250m", "256Mi", ["a"])
    limits = by_kind(build_manifests(spec))["LimitRange"][0]["spec"]["limits"][0]
    assert limits["default"] == {"cpu": "250m", "memory": "256Mi"}
    assert limits["defaultRequest"] == {"cpu": "100m", "memory": "128Mi"}


@pytest.mark.parametrize(
    ("role", "user", "name"),
    [
        ("edit", "minji.kim", "timbel-edit-minji.kim"),
        ("admin", "ops", "timbel-admin-ops"),
        ("system:aggregate-to-edit", "a", "timbel-system-aggregate-to-edit-a"),
    ],
)
def test_binding_names(role: str, user: str, name: str) -> None:
    assert binding_name(role, user) == name


def test_binding_names_of_users_that_are_not_object_names_stay_distinct() -> None:
    first, second = binding_name("edit", "Minji_Kim"), binding_name("edit", "minji-kim")
    assert first != second and first.startswith("timbel-edit-minji-kim-")
    assert re.fullmatch(r"[a-z0-9]([-a-z0-9.]*[a-z0-9])?", first)


@pytest.mark.parametrize(
    ("cores", "text"), [(8.0, "8"), (0.5, "500m"), (1.25, "1250m"), (0.001, "1m")]
)
def test_render_cpu(cores: float, text: str) -> None:
    assert render_cpu(cores) == text


@pytest.mark.parametrize(
    ("size", "text"), [(GI, "1Gi"), (3 * 2**20, "3Mi"), (2 * 10**9, "2G"), (7, "7")]
)
def test_render_memory(size: int, text: str) -> None:
    assert render_memory(size) == text


def test_describe() -> None:
    manifests = build_manifests(tenant_spec("shop", "1", "1Gi", ["a"]))
    assert [describe(m) for m in manifests[:2]] == [
        "Namespace shop",
        "ResourceQuota shop/tenant-quota",
    ]
