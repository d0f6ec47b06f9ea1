"""The commit an image was built from, as its config's labels say: parsed on tables, then read
from a real `docker-registry` holding images pushed with labelled configs."""

from __future__ import annotations

import pytest

from tests.resources.test_registry import client
from tests.services import oci_registry as service
from tests.services.oci_registry import Registry
from timbel_dagster.resources.registry_parse import parse_revision

oci_registry = service.oci_registry

SHA = "4f1c2b9d0e8a7c6b5a4f3e2d1c0b9a8f7e6d5c4b"
OCI = "org.opencontainers.image.revision"
LABEL_SCHEMA = "org.label-schema.vcs-ref"


@pytest.mark.parametrize(
    ("config", "expected"),
    [
        # docker/metadata-action (and `docker build --label`): the OCI annotation.
        ({"config": {"Labels": {OCI: SHA, "org.opencontainers.image.version": "1.4.2"}}}, SHA),
        # The OCI name wins over the older ones.
        ({"config": {"Labels": {LABEL_SCHEMA: "old", "vcs-ref": "older", OCI: SHA}}}, SHA),
        ({"config": {"Labels": {LABEL_SCHEMA: SHA, "vcs-ref": "other"}}}, SHA),
        ({"config": {"Labels": {"vcs-ref": f" {SHA}\n"}}}, SHA),  # stripped
        # An empty or unusable OCI label falls back to the next one.
        ({"config": {"Labels": {OCI: "", LABEL_SCHEMA: SHA}}}, SHA),
        ({"config": {"Labels": {OCI: 7, "vcs-ref": SHA}}}, SHA),
        # Liberal about what real configs hold: no revision, never an error.
        ({"config": {"Labels": None}}, None),  # what `docker inspect` shows without labels
        ({"config": {"Labels": ["not", "an", "object"]}}, None),
        ({"config": {}}, None),
        ({"config": None}, None),
        ({}, None),
        ([], None),
        ({"config": {"Labels": {OCI: "x" * 129}}}, None),  # longer than the column
        ({"config": {"Labels": {"org.opencontainers.image.source": "https://git/x"}}}, None),
    ],
)
def test_parse_revision(config: object, expected: str | None) -> None:
    assert parse_revision(config) == expected


def test_images_carry_the_revision_label(oci_registry: Registry) -> None:
    oci_registry.push("payments/payments-api", "1.4.2", labels={OCI: SHA})
    oci_registry.push("payments/payments-api", "1.4.1", labels={LABEL_SCHEMA: "a" * 40})
    oci_registry.push("payments/payments-api", "1.4.0", labels={"vcs-ref": "b" * 40})
    oci_registry.push("payments/payments-api", "1.3.9")  # built without labels
    oci_registry.push_index("payments/payments-web", "2.0", labels={OCI: "c" * 40})
    registry = client(oci_registry)
    found = {(i.repository, i.tag): i.revision for i in registry.images()}
    assert found == {
        ("payments/payments-api", "1.3.9"): None,
        ("payments/payments-api", "1.4.0"): "b" * 40,
        ("payments/payments-api", "1.4.1"): "a" * 40,
        ("payments/payments-api", "1.4.2"): SHA,
        ("payments/payments-web", "2.0"): "c" * 40,  # an index: its linux/amd64 image's
    }
    # Read from the config blob that `created` already costs: no request more per tag.
    assert registry.http.requests_made == 1 + 2 + 4 * 2 + 3  # catalog, tags, manifest+config


def test_details_off_reads_no_config(oci_registry: Registry) -> None:
    oci_registry.push("payments/payments-api", "1.4.2", labels={OCI: SHA})
    [image] = client(oci_registry).images(details=False)
    assert image.revision is None and image.created is None
