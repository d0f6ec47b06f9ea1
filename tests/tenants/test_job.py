"""The `provision_tenant` op job, executed in process."""

from __future__ import annotations

from contextlib import nullcontext

import dagster as dg
from sqlalchemy import select

from tests.fakes.kubernetes_server import FakeKubernetes
from tests.tenants.conftest import ACTOR
from timbel_dagster.bindings.warehouse import WarehouseResource
from timbel_dagster.deploy.grants import grant_run
from timbel_dagster.jobs.run_actor import acting_as
from timbel_dagster.jobs.tenants import delete_tenant_job, provision_tenant
from timbel_dagster.resources.kubernetes import KubernetesResource
from timbel_dagster.tenants import store
from timbel_dagster.warehouse.engine import get_engine
from timbel_dagster.warehouse.schema.models import AuditEvent


def run_config(**changes: object) -> dict:
    config = {"name": "shop", "cpu": "8", "memory": "16Gi",
              "users": ["jaehyun.park", "soyeon.lee"], "groups": ["dev", "staging"]}  # fmt: skip
    return {"ops": {"provision": {"config": config | changes}}}


def execute(
    warehouse_url: str,
    kubernetes: KubernetesResource,
    tags: dict,
    instance: dg.DagsterInstance | None = None,
    acting: str | None = ACTOR,
    **changes: object,
):
    """Run the job as the API's grant lets it (a run grant for its exact config, acting as
    `acting`), or, with `acting` None, as a launch from the Dagster UI with no grant does: its
    tags are only claims."""
    if acting:
        with get_engine(warehouse_url).begin() as connection:
            grant_run(connection, "provision_tenant", run_config(**changes), acting)
    with acting_as(acting) if acting else nullcontext():
        return provision_tenant.execute_in_process(
            instance=instance,
            run_config=run_config(**changes),
            resources={"warehouse": WarehouseResource(database_url=warehouse_url),
                       "kubernetes": kubernetes},
            tags=tags,
            raise_on_error=False,
        )  # fmt: skip


def test_the_job_provisions_and_records_the_tenant(
    engine, warehouse_url: str, kubernetes: KubernetesResource, staging: FakeKubernetes
) -> None:
    instance = dg.DagsterInstance.ephemeral()
    result = execute(warehouse_url, kubernetes, {"timbel/actor": ACTOR}, instance)
    assert result.success
    output = result.output_for_node("provision")
    assert output["action"] == "tenant.create"
    assert [c["cluster"] for c in output["clusters"]] == ["seoul-dev-01", "seoul-stg-01"]
    assert staging.get("NetworkPolicy", "default-deny", "shop") is not None
    logged = [e.user_message for e in instance.all_logs(result.run_id)]
    assert "seoul-stg-01: Kubernetes v1.31.2, 6 manifests valid (schema 1.31)" in logged
    assert "seoul-dev-01: RoleBinding shop/timbel-edit-soyeon.lee created" in logged
    [materialization] = [e for e in result.all_node_events if e.event_type_value == "STEP_OUTPUT"]
    metadata = materialization.event_specific_data.metadata
    assert metadata["objects_created"].value == 12 and metadata["clusters"].value == 2
    with engine.connect() as connection:
        row = store.get_tenant(connection, "shop")
        actions = connection.execute(
            select(AuditEvent.actor, AuditEvent.action).order_by(AuditEvent.id)
        ).all()
    assert row is not None and row.created_by == ACTOR
    assert actions == [(ACTOR, "run.grant"), (ACTOR, "run.claim"), (ACTOR, "tenant.create")]


def test_a_refused_run_fails_changes_nothing_and_is_audited(
    engine,
    warehouse_url: str,
    kubernetes: KubernetesResource,
    dev: FakeKubernetes,
    staging: FakeKubernetes,
) -> None:
    result = execute(warehouse_url, kubernetes, {"timbel/actor": ACTOR}, cpu="8 cores")
    assert not result.success
    [failure] = [e for e in result.all_events if e.event_type_value == "STEP_FAILURE"]
    assert failure.step_failure_data.user_failure_data.description == (
        "TenantSpecError: cpu '8 cores' is not a Kubernetes quantity (for example 8, 1.5 or 500m)"
    )
    # Acting as `dagster`, who is not a user of the warehouse, is refused too.
    assert not execute(warehouse_url, kubernetes, {}, acting="dagster").success
    assert [r for f in (dev, staging) for r in f.requests if r[0] != "GET"] == []
    with engine.connect() as connection:
        assert store.get_tenant(connection, "shop") is None
        events = connection.execute(
            select(AuditEvent.actor, AuditEvent.action).order_by(AuditEvent.id)
        ).all()
    assert events == [
        (ACTOR, "run.grant"), (ACTOR, "run.claim"), (ACTOR, "tenant.create.refused"),
        ("dagster", "run.grant"), ("dagster", "run.claim"), ("dagster", "tenant.create.refused"),
    ]  # fmt: skip


def test_a_launch_from_the_ui_is_refused_whatever_its_tag_claims(
    engine, warehouse_url: str, kubernetes: KubernetesResource, dev: FakeKubernetes
) -> None:
    """Issue #13, finding 7: `timbel/actor=<anyone>` on a UI launch used to provision as
    that person. Now a run without a grant is refused and audited as `dagster-ui`, the tag
    a claim."""
    result = execute(warehouse_url, kubernetes, {"timbel/actor": "admin"}, acting=None)
    assert not result.success
    [failure] = [e for e in result.all_events if e.event_type_value == "STEP_FAILURE"]
    assert failure.step_failure_data.user_failure_data.description == (
        "provision_tenant refused: no run grant for provision_tenant with this exact config: "
        "launch it through the API or the timbel command, not with a config typed into the "
        "Launchpad"
    )
    assert [r for r in dev.requests if r[0] != "GET"] == []
    with engine.connect() as connection:
        assert store.get_tenant(connection, "shop") is None
        [event] = connection.execute(
            select(AuditEvent.actor, AuditEvent.action, AuditEvent.details).order_by(AuditEvent.id)
        ).all()
    assert event.actor == "dagster-ui" and event.action == "run.refused"
    assert event.details["run"] == result.run_id
    assert event.details["launched_from"] == "dagster-ui"
    assert event.details["unverified_claim"] == "admin"


def test_delete_tenant_runs_only_with_a_grant_and_once(
    engine, warehouse_url: str, kubernetes: KubernetesResource, staging: FakeKubernetes
) -> None:
    assert execute(warehouse_url, kubernetes, {}).success
    delete_config = {"ops": {"remove_tenant": {"config": {"name": "shop"}}}}
    resources = {"warehouse": WarehouseResource(database_url=warehouse_url),
                 "kubernetes": kubernetes}  # fmt: skip

    def delete() -> dg.ExecuteInProcessResult:
        return delete_tenant_job.execute_in_process(
            run_config=delete_config, resources=resources, raise_on_error=False
        )

    ungranted = delete()
    assert not ungranted.success
    with engine.connect() as connection:
        assert store.get_tenant(connection, "shop").status == "provisioned"
    with engine.begin() as connection:
        grant_run(connection, "delete_tenant", delete_config, ACTOR)
    assert delete().success
    assert not delete().success  # the grant is spent
    with engine.connect() as connection:
        assert store.get_tenant(connection, "shop").status == "deleted"
        events = connection.execute(
            select(AuditEvent.actor, AuditEvent.action)
            .where(AuditEvent.action.in_(["run.refused", "tenant.delete"]))
            .order_by(AuditEvent.id)
        ).all()
    assert events == [("dagster-ui", "run.refused"), (ACTOR, "tenant.delete"),
                      ("dagster-ui", "run.refused")]  # fmt: skip
