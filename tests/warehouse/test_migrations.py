from __future__ import annotations

import pytest
from sqlalchemy import inspect

from timbel_dagster.warehouse import migrate
from timbel_dagster.warehouse.engine import WarehouseUnavailableError, get_engine
from timbel_dagster.warehouse.schema.models import Base, autogenerate_filter

TABLES = {
    "backups",
    "slo_status",
    "users",
    "clusters",
    "pipelines",
    "pipeline_executions",
    "stage_executions",
    "execution_logs",
    "execution_log_chunks",
    "commits",
    "deployments",
    "deployment_commits",
    "incidents",
    "dora_metrics",
    "node_metrics",
    "pod_metrics",
    "namespace_usage",
    "workload_status",
    "cost_allocations",
    "cluster_costs",
    "rightsizing_suggestions",
    "ml_models",
    "risk_training_rows",
    "risk_scores",
    "bottleneck_findings",
    "cost_forecasts",
    "cost_suggestions",
    "registry_images",
    "scan_results",
    "vulnerability_findings",
    "misconfiguration_findings",
    "secret_findings",
    "pipeline_templates",
    "pipeline_template_versions",
    "pipeline_template_tags",
    "pipeline_template_shares",
    "pipeline_template_ratings",
    "pipeline_template_usage",
    "alert_rules",
    "alerts",
    "alert_events",
    "alert_silences",
    "notification_subscriptions",
    "notifications",
    "metric_series",
    "metric_samples",
    "deployment_requests",
    "approval_steps",
    "tenants",
    "audit_checkpoints",
    "rollout_targets",
    "rollbacks",
    "scaling_history",
    "audit_events",
    "security_issue_links",
    "quality_gates",
    "repository_analyses",
    "repository_dependencies",
    "ingestion_rejects",
    "api_tokens",
    "teams",
    "team_members",
    "tenant_members",
    "service_owners",
    "webhook_deliveries",
    "run_grants",
    "service_leases",
}


def _tables(url: str) -> set[str]:
    return set(inspect(get_engine(url)).get_table_names()) - {"alembic_version"}


def test_upgrade_creates_every_table_and_twice_is_a_no_op(database_url: str) -> None:
    assert migrate.upgrade(database_url) == (None, migrate.head_revision())
    assert _tables(database_url) == TABLES == set(Base.metadata.tables)
    assert migrate.upgrade(database_url) == (migrate.head_revision(), migrate.head_revision())
    assert _tables(database_url) == TABLES


def test_downgrade_to_base_and_up_again(database_url: str) -> None:
    migrate.upgrade(database_url)
    assert migrate.downgrade(database_url, "base") == (migrate.head_revision(), None)
    assert _tables(database_url) == set()
    migrate.upgrade(database_url)
    assert _tables(database_url) == TABLES


def test_migrations_match_the_models(warehouse_url: str) -> None:
    """Autogenerate finds nothing to do: the migration scripts and the models agree."""
    from alembic.autogenerate import compare_metadata
    from alembic.runtime.migration import MigrationContext

    with get_engine(warehouse_url).connect() as connection:
        # As env.py configures it: the trigram indexes are compared on PostgreSQL only.
        context = MigrationContext.configure(
            connection, opts={"include_object": autogenerate_filter(connection.dialect.name)}
        )
        differences = compare_metadata(context, Base.metadata)
    # The full-text index exists on PostgreSQL only, as an expression the models cannot hold.
    differences = [
        d
        for d in differences
        if not (d[0] == "remove_index" and d[1].name == "ix_execution_log_chunks_fts")
    ]
    assert differences == []


@pytest.mark.parametrize(
    "url",
    [
        "postgresql+psycopg://postgres@127.0.0.1:1/nowhere",
        "sqlite:////proc/definitely/not/writable/warehouse.db",
    ],
)
def test_unreachable_database_is_one_line_naming_the_setting(url: str) -> None:
    with pytest.raises(WarehouseUnavailableError) as error:
        migrate.upgrade(url)
    message = str(error.value)
    assert message.startswith("TIMBEL_DATABASE_URL: cannot connect to ")
    assert "\n" not in message
