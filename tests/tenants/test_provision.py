"""Provisioning and deleting tenants: checks first, then the clusters, then the row and its
audit event; refused attempts change nothing and are audited."""

from __future__ import annotations

import re

import pytest
from sqlalchemy import select

from tests.fakes.kubernetes_server import FakeKubernetes
from tests.tenants.conftest import ACTOR
from timbel_dagster.resources.kubernetes import KubernetesResource
from timbel_dagster.tenants import provision as provision_module
from timbel_dagster.tenants import store
from timbel_dagster.tenants.provision import TenantRequest, delete_tenant, provision_tenant
from timbel_dagster.warehouse.audit.chain import verify_chain
from timbel_dagster.warehouse.schema.models import AuditEvent

BOTH = ("seoul-dev-01", "seoul-stg-01")


def request(**changes: object) -> TenantRequest:
    settings: dict = {"name": "shop", "cpu": "8", "memory": "16Gi",
                      "users": ("jaehyun.park", "soyeon.lee"), "clusters": BOTH}  # fmt: skip
    return TenantRequest(**(settings | changes))


def audit(engine) -> list[dict]:
    with engine.connect() as connection:
        assert verify_chain(connection).intact
        query = select(
            AuditEvent.actor, AuditEvent.action, AuditEvent.target, AuditEvent.details
        ).order_by(AuditEvent.id)
        return [dict(r) for r in connection.execute(query.order_by(AuditEvent.id)).mappings()]


def tenant_row(engine, name: str = "shop") -> store.TenantRow | None:
    with engine.connect() as connection:
        return store.get_tenant(connection, name)


def writes(*fakes: FakeKubernetes) -> list[tuple[str, str, str]]:
    return [r for fake in fakes for r in fake.requests if r[0] not in ("GET",)]


def test_provision_creates_on_each_cluster_and_records_the_tenant(
    engine, kubernetes: KubernetesResource, dev: FakeKubernetes, staging: FakeKubernetes
) -> None:
    lines: list[str] = []
    result = provision_tenant(engine, kubernetes, request(), ACTOR, log=lines.append)
    assert result["action"] == "tenant.create" and result["cpu"] == "8"
    versions = {c["cluster"]: (c["kubernetes_version"], c["schema_version"])
                for c in result["clusters"]}  # fmt: skip
    assert versions == {"seoul-dev-01": ("v1.29.4", "1.29"), "seoul-stg-01": ("v1.31.2", "1.31")}
    for cluster in result["clusters"]:
        assert [o["action"] for o in cluster["objects"]] == ["created"] * 6
    for fake in (dev, staging):
        assert fake.get("ResourceQuota", "tenant-quota", "shop")["spec"]["hard"]["pods"] == "100"
        assert fake.get("RoleBinding", "timbel-edit-soyeon.lee", "shop") is not None
    # Every cluster is checked before the first object is applied.
    assert lines.index("seoul-stg-01: Kubernetes v1.31.2, 6 manifests valid (schema 1.31)") < (
        lines.index("seoul-dev-01: Namespace shop created")
    )
    row = tenant_row(engine)
    assert row is not None
    assert (row.cpu_cores, row.memory_bytes, row.users, row.clusters, row.status) == (
        8.0, 16 * 2**30, ["jaehyun.park", "soyeon.lee"], list(BOTH), "provisioned"
    )  # fmt: skip
    assert row.created_by == ACTOR
    [event] = audit(engine)
    assert (event["actor"], event["action"], event["target"]) == (
        ACTOR,
        "tenant.create",
        "tenant shop",
    )
    assert event["details"]["applied"] == {
        "seoul-dev-01": {"created": 6},
        "seoul-stg-01": {"created": 6},
    }

    again = provision_tenant(engine, kubernetes, request(), ACTOR)
    assert again["action"] == "tenant.update"
    assert {o["action"] for c in again["clusters"] for o in c["objects"]} == {"unchanged"}
    events = audit(engine)
    assert [e["action"] for e in events] == ["tenant.create", "tenant.update"]
    assert events[1]["details"]["changed"] == []


def test_an_update_by_group_keeps_the_clusters_already_provisioned(
    engine, kubernetes: KubernetesResource, staging: FakeKubernetes
) -> None:
    provision_tenant(engine, kubernetes, request(clusters=("seoul-dev-01",)), ACTOR)
    assert staging.get("Namespace", "shop") is None
    result = provision_tenant(
        engine, kubernetes, request(clusters=(), groups=("staging",), cpu="4"), ACTOR
    )
    assert [c["cluster"] for c in result["clusters"]] == ["seoul-stg-01"]
    assert (
        staging.get("ResourceQuota", "tenant-quota", "shop")["spec"]["hard"]["requests.cpu"] == "4"
    )
    row = tenant_row(engine)
    assert row is not None and row.clusters == list(BOTH) and row.cpu_cores == 4.0


def test_a_dry_run_changes_nothing(
    engine, kubernetes: KubernetesResource, dev: FakeKubernetes, staging: FakeKubernetes
) -> None:
    result = provision_tenant(engine, kubernetes, request(), ACTOR, dry_run=True)
    assert result["dry_run"] is True and result["action"] is None
    assert {o["action"] for c in result["clusters"] for o in c["objects"]} == {"created"}
    assert [r for r in writes(dev, staging) if "dryRun=All" not in r[2]] == []
    assert tenant_row(engine) is None and audit(engine) == []


def _broken_manifests(spec):
    from timbel_dagster.tenants.manifests import build_manifests

    manifests = build_manifests(spec)
    manifests[1]["spec"]["hard"] = ["cpu=8"]
    return manifests


@pytest.mark.parametrize(
    ("changes", "actor", "message"),
    [
        ({"cpu": "8 cores"}, ACTOR, "cpu '8 cores' is not a Kubernetes quantity"),
        ({"memory": "16GB"}, ACTOR, "memory '16GB' is not a Kubernetes quantity"),
        ({"name": "Shop!"}, ACTOR, "tenant name 'Shop!' is not a DNS-1123 label"),
        ({"clusters": ("seoul-dev-01", "busan-dev-09")}, ACTOR,
         "unknown cluster(s) busan-dev-09; the clusters file has seoul-dev-01, seoul-prod-01, "
         "seoul-stg-01"),
        ({"clusters": (), "groups": ("qa",)}, ACTOR,
         "unknown group 'qa'; groups are dev, staging, prod"),
        ({"clusters": ()}, ACTOR, "name the clusters: give --cluster NAME or --group"),
        ({"users": ("soyeon.lee", "nobody", "ghost")}, ACTOR,
         "users 'ghost', 'nobody' are not in the users table: add them with `timbel users add"),
        ({}, "mallory", "user 'mallory' is not in the users table: add them with `timbel users"),
        # The dev cluster answers, production cannot be reached: nothing is applied to dev.
        ({"clusters": ("seoul-dev-01", "seoul-prod-01")}, ACTOR,
         "cluster seoul-prod-01: kubeconfig context 'prod-admin'"),
    ],
)  # fmt: skip
def test_refused_attempts_change_nothing_and_are_audited(
    engine,
    kubernetes: KubernetesResource,
    dev: FakeKubernetes,
    staging: FakeKubernetes,
    changes: dict,
    actor: str,
    message: str,
) -> None:
    with pytest.raises((ValueError, LookupError, RuntimeError), match=re.escape(message)):
        provision_tenant(engine, kubernetes, request(**changes), actor)
    assert writes(dev, staging) == []
    assert tenant_row(engine, changes.get("name", "shop")) is None
    [event] = audit(engine)
    assert (event["actor"], event["action"]) == (actor, "tenant.create.refused")
    assert message in event["details"]["error"]
    assert event["details"]["cpu"] == changes.get("cpu", "8")


def test_a_manifest_invalid_for_a_clusters_version_is_refused(
    engine,
    kubernetes: KubernetesResource,
    dev: FakeKubernetes,
    staging: FakeKubernetes,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(provision_module, "build_manifests", _broken_manifests)
    message = (
        "ResourceQuota shop/tenant-quota is not valid for Kubernetes v1.29.4 (schema 1.29): "
        "spec.hard: ['cpu=8'] is not of type 'object'"
    )
    with pytest.raises(ValueError, match=re.escape(message)):
        provision_tenant(engine, kubernetes, request(), ACTOR)
    assert writes(dev, staging) == [] and tenant_row(engine) is None
    assert [(e["action"], e["details"]["error_type"]) for e in audit(engine)] == [
        ("tenant.create.refused", "ManifestInvalidError")
    ]


def test_a_failure_while_applying_is_audited_and_a_rerun_finishes(
    engine, kubernetes: KubernetesResource, dev: FakeKubernetes, staging: FakeKubernetes
) -> None:
    staging.fail_next(403, message="rolebindings is forbidden", path_contains="rolebindings")
    with pytest.raises(RuntimeError, match="seoul-stg-01 RoleBinding shop/timbel-edit-jaehyun"):
        provision_tenant(engine, kubernetes, request(), ACTOR)
    assert tenant_row(engine) is None
    [failed] = audit(engine)
    assert failed["action"] == "tenant.create.failed"
    # What was applied before the failure, on the failing cluster too.
    assert failed["details"]["applied"] == {
        "seoul-dev-01": {"created": 6},
        "seoul-stg-01": {"created": 4},
    }
    assert "seoul-stg-01: NetworkPolicy shop/default-deny created" in failed["details"]["objects"]
    result = provision_tenant(engine, kubernetes, request(), ACTOR)
    counts = {c["cluster"]: sorted({o["action"] for o in c["objects"]}) for c in result["clusters"]}
    assert counts == {"seoul-dev-01": ["unchanged"], "seoul-stg-01": ["created", "unchanged"]}
    assert [e["action"] for e in audit(engine)] == ["tenant.create.failed", "tenant.create"]


def test_delete_removes_the_namespaces_and_marks_the_tenant_deleted(
    engine, kubernetes: KubernetesResource, dev: FakeKubernetes, staging: FakeKubernetes
) -> None:
    provision_tenant(engine, kubernetes, request(), ACTOR)
    staging.delete((staging.kind_named("Namespace"), None, "shop"))  # gone by hand already
    result = delete_tenant(engine, kubernetes, "shop", ACTOR)
    assert result["namespaces"] == {"seoul-dev-01": "deleted", "seoul-stg-01": "absent"}
    assert dev.get("Namespace", "shop") is None
    assert dev.get("RoleBinding", "timbel-edit-soyeon.lee", "shop") is None
    row = tenant_row(engine)
    assert row is not None and row.status == "deleted"
    assert [e["action"] for e in audit(engine)] == ["tenant.create", "tenant.delete"]
    with engine.connect() as connection:
        assert store.list_tenants(connection) == []
        assert [r.name for r in store.list_tenants(connection, include_deleted=True)] == ["shop"]

    recreated = provision_tenant(engine, kubernetes, request(clusters=("seoul-stg-01",)), ACTOR)
    assert recreated["action"] == "tenant.create"
    row = tenant_row(engine)
    assert row is not None and row.clusters == ["seoul-stg-01"] and row.status == "provisioned"


def test_delete_refuses_unknown_tenants_and_namespaces_timbel_did_not_make(
    engine, kubernetes: KubernetesResource, dev: FakeKubernetes, staging: FakeKubernetes
) -> None:
    with pytest.raises(LookupError, match="no provisioned tenant 'shop'"):
        delete_tenant(engine, kubernetes, "shop", ACTOR)
    provision_tenant(engine, kubernetes, request(), ACTOR)
    namespace = staging.get("Namespace", "shop")
    namespace["metadata"]["labels"] = {"team": "someone-else"}
    staging.put(namespace)
    with pytest.raises(ValueError, match="cluster seoul-stg-01: namespace shop is not labelled"):
        delete_tenant(engine, kubernetes, "shop", ACTOR)
    # Checked on every cluster before deleting on any.
    assert dev.get("Namespace", "shop") is not None and staging.get("Namespace", "shop")
    assert [e["action"] for e in audit(engine)] == [
        "tenant.delete.refused", "tenant.create", "tenant.delete.refused"
    ]  # fmt: skip
    row = tenant_row(engine)
    assert row is not None and row.status == "provisioned"
