"""Manifests checked with kubernetes-validate for a cluster's version."""

from __future__ import annotations

import copy
import re

import pytest

from timbel_dagster.tenants.manifests import build_manifests, tenant_spec
from timbel_dagster.tenants.validate import (
    ManifestInvalidError,
    schema_version,
    supported_versions,
    validate_manifest,
    validate_manifests,
)


@pytest.fixture
def manifests() -> list[dict]:
    return build_manifests(tenant_spec("shop", "8", "16Gi", ["minji.kim", "jaehyun.park"]))


def test_kubernetes_validate_ships_a_range_of_versions() -> None:
    versions = supported_versions()
    assert versions == sorted(versions) and (1, 29) in versions and len(versions) >= 5


@pytest.mark.parametrize(
    ("version", "schema"),
    [("1.29", "1.29"), ("v1.29.4", "1.29"), ("1.30.2-gke.1100", "1.30"), ("v1.31", "1.31")],
)
def test_a_cluster_version_maps_to_its_schema(version: str, schema: str) -> None:
    assert schema_version(version) == schema


def test_versions_outside_the_shipped_range_map_to_the_nearest() -> None:
    oldest, newest = supported_versions()[0], supported_versions()[-1]
    assert schema_version("v1.12.0") == f"{oldest[0]}.{oldest[1]}"
    assert schema_version("1.99") == f"{newest[0]}.{newest[1]}"
    # Versions compare as numbers: 1.100 is newer than 1.37, 1.9 older than 1.25.
    assert schema_version("1.100") == f"{newest[0]}.{newest[1]}"
    assert schema_version("1.9") == f"{oldest[0]}.{oldest[1]}"


@pytest.mark.parametrize("version", ["", "latest", "one.two"])
def test_an_unreadable_version_is_refused(version: str) -> None:
    with pytest.raises(ValueError, match=r"is not a version like 1\.29"):
        schema_version(version)


@pytest.mark.parametrize("version", ["1.25", "v1.29.4", "1.31", "1.37"])
def test_the_tenant_manifests_are_valid(manifests: list[dict], version: str) -> None:
    assert validate_manifests(manifests, version) == schema_version(version)


def _broken(manifests: list[dict], kind: str) -> dict:
    return copy.deepcopy(next(m for m in manifests if m["kind"] == kind))


def test_a_field_the_schema_does_not_know_is_refused_naming_the_object(
    manifests: list[dict],
) -> None:
    quota = _broken(manifests, "ResourceQuota")
    quota["spec"]["hardd"] = quota["spec"].pop("hard")
    message = (
        "ResourceQuota shop/tenant-quota is not valid for Kubernetes v1.29.4 (schema 1.29): "
        "spec: Additional properties are not allowed ('hardd' was unexpected)"
    )
    with pytest.raises(ManifestInvalidError, match=re.escape(message)):
        validate_manifests([manifests[0], quota], "v1.29.4")


def test_a_value_of_the_wrong_type_is_refused_with_its_field(manifests: list[dict]) -> None:
    policy = _broken(manifests, "NetworkPolicy")
    policy["spec"]["policyTypes"] = "Ingress"
    with pytest.raises(ManifestInvalidError) as caught:
        validate_manifest(policy, "1.30")
    assert str(caught.value).startswith(
        "NetworkPolicy shop/default-deny is not valid for Kubernetes 1.30 (schema 1.30): "
        "spec.policyTypes: 'Ingress' is not of type 'array'"
    )


def test_a_missing_required_field_is_refused(manifests: list[dict]) -> None:
    binding = _broken(manifests, "RoleBinding")
    del binding["roleRef"]
    with pytest.raises(ManifestInvalidError, match=r"RoleBinding shop/timbel-edit-.*'roleRef'"):
        validate_manifest(binding, "1.29")


def test_a_kind_the_version_does_not_have_is_refused() -> None:
    manifest = {"apiVersion": "extensions/v1beta1", "kind": "NetworkPolicy",
                "metadata": {"name": "old", "namespace": "shop"}}  # fmt: skip
    with pytest.raises(ManifestInvalidError, match=re.escape(
        "NetworkPolicy shop/old: Kubernetes 1.29 (schema 1.29) has no NetworkPolicy in "
        "extensions/v1beta1"
    )):  # fmt: skip
        validate_manifest(manifest, "1.29")
