"""Runs asked for through the API: a rollback, a tenant, a tenant's deletion. The answer is
the run grant; `run_grant_sensor` launches the job with exactly that config."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field

from timbel_dagster.tenants.manifests import (
    DEFAULT_INGRESS_NAMESPACE,
    DEFAULT_PODS,
    DEFAULT_ROLE,
)

_TEXT = r"\S"


class RollbackIn(BaseModel):
    service: str = Field(min_length=1, max_length=128, pattern=_TEXT, examples=["shop-api"])
    cluster: str = Field(min_length=1, max_length=128, pattern=_TEXT, examples=["prod-a"])
    reason: str = Field(min_length=1, max_length=2000, pattern=_TEXT, examples=["5xx at 30 %"])
    request: int | None = Field(
        default=None,
        ge=1,
        description="The deployment request to roll back; default the newest of the service "
        "that rolled out to the cluster. The job goes back to the last known-good image.",
    )
    to_revision: str | None = Field(
        default=None,
        min_length=1,
        max_length=512,
        pattern=_TEXT,
        examples=["41", "registry.example.com/shop/api:1.4.1", "1.4.1"],
        description="Roll back to this past deployment instead of the last known-good image: "
        "a deployment request number (`41` or `#41`), or its image, tag or digest (the newest "
        "such deployment). It must be of the service, earlier than the one rolled back, and "
        "have rolled out to the cluster successfully without being rolled back from there; "
        "the grant carries it as `to_request` and `to_image`, and the job checks it again.",
    )
    dry_run: bool = Field(default=False, description="Record what it would do, change nothing.")


class TenantIn(BaseModel):
    """The `provision_tenant` job's settings (`timbel tenant create`)."""

    name: str = Field(min_length=1, max_length=63, examples=["shop"])
    cpu: str = Field(min_length=1, max_length=32, examples=["8"])
    memory: str = Field(min_length=1, max_length=32, examples=["16Gi"])
    users: list[str] = Field(min_length=1, examples=[["dana", "lee"]])
    clusters: list[str] = Field(default=[], description="Cluster names of the clusters file.")
    groups: list[str] = Field(default=[], examples=[["dev", "staging"]])
    pods: int = Field(default=DEFAULT_PODS, ge=1)
    role: str = Field(default=DEFAULT_ROLE, description="The ClusterRole bound in the namespace.")
    ingress_namespace: str = DEFAULT_INGRESS_NAMESPACE
    dry_run: bool = False


class RunGrantOut(BaseModel):
    """A run grant: the job will run once with exactly `run_config`, as the caller."""

    grant: str = Field(description="The grant's id; the run's `timbel/grant` tag and run key.")
    job: str
    run_config: dict[str, Any]
    request: int | None = Field(description="The deployment request it concerns, if any.")

    model_config = {
        "json_schema_extra": {
            "examples": [
                {
                    "grant": "7d0c2f4e-8a51-4b1e-9b8e-2f6a0c3d4e5f",
                    "job": "rollback",
                    "run_config": {"ops": {"roll_back_deployment": {"config": {
                        "request": 42, "cluster": "prod-a", "reason": "5xx at 30 %",
                        "trigger": "ops", "dry_run": False}}}},
                    "request": 42,
                }
            ]
        }
    }  # fmt: skip
