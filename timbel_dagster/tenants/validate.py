"""Schema validation of manifests with kubernetes-validate, for a cluster's Kubernetes version.

kubernetes-validate ships the OpenAPI schemas of a range of Kubernetes minor versions. A
cluster's version (`1.29`, `v1.29.4`, `v1.30.2-gke.1`) maps to the newest shipped schema not
newer than it, or to the oldest shipped one for an older cluster. Validation is strict: a
field the schema does not know is an error, as it would be for `kubectl apply`.
"""

from __future__ import annotations

import re
from typing import Any

from timbel_dagster.tenants.manifests import describe

_VERSION = re.compile(r"v?(\d+)\.(\d+)")


class ManifestInvalidError(ValueError):
    """A manifest does not match its kind's schema; the message names the object."""


def supported_versions() -> list[tuple[int, int]]:
    """The (major, minor) versions kubernetes-validate has schemas for, oldest first."""
    from kubernetes_validate.utils import all_versions

    return sorted({_major_minor(v) for v in all_versions()})


def _major_minor(version: str) -> tuple[int, int]:
    match = _VERSION.match(version.strip())
    if not match:
        raise ValueError(f"Kubernetes version {version!r} is not a version like 1.29 or v1.29.4")
    return int(match.group(1)), int(match.group(2))


def schema_version(kubernetes_version: str) -> str:
    """The schema version (`1.29`) used for a cluster running `kubernetes_version`.

    Raises:
        ValueError: the version cannot be read.
    """
    wanted = _major_minor(kubernetes_version)
    versions = supported_versions()
    older = [v for v in versions if v <= wanted]
    major, minor = older[-1] if older else versions[0]
    return f"{major}.{minor}"


def validate_manifest(manifest: dict[str, Any], kubernetes_version: str) -> str:
    """Check one manifest against the schema for `kubernetes_version`.

    Returns:
        The schema version used (`1.29`).

    Raises:
        ManifestInvalidError: the manifest is not valid, naming its kind, namespace/name, the
            field and the schema's message; or no schema exists for its kind.
    """
    import kubernetes_validate
    from kubernetes_validate.utils import SchemaNotFoundError

    version = schema_version(kubernetes_version)
    what = describe(manifest)
    if not manifest.get("apiVersion") or not manifest.get("kind"):
        raise ManifestInvalidError(f"{what}: apiVersion and kind are required")
    try:
        kubernetes_validate.validate(manifest, f"{version}.0", strict=True)
    except kubernetes_validate.ValidationError as error:
        field = ".".join(str(part) for part in error.path) or "(top level)"
        raise ManifestInvalidError(
            f"{what} is not valid for Kubernetes {kubernetes_version} (schema {version}): "
            f"{field}: {error.message}"
        ) from None
    except SchemaNotFoundError:
        raise ManifestInvalidError(
            f"{what}: Kubernetes {kubernetes_version} (schema {version}) has no "
            f"{manifest['kind']} in {manifest['apiVersion']}"
        ) from None
    return version


def validate_manifests(manifests: list[dict[str, Any]], kubernetes_version: str) -> str:
    """Check every manifest; the first invalid one raises `ManifestInvalidError`."""
    version = schema_version(kubernetes_version)
    for manifest in manifests:
        validate_manifest(manifest, kubernetes_version)
    return version
