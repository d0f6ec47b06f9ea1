"""What deployment requests may name: a pipeline of a service and registry tags, stored the
way ingestion stores them (`store_images`), so requests for them pass `deploy.known`."""

from __future__ import annotations

import datetime as dt

from timbel_dagster.assets.security.images import store_images
from timbel_dagster.records.image_ref import parse_image
from timbel_dagster.resources.registry_records import OCI_MANIFEST, Image
from timbel_dagster.warehouse.engine import get_engine
from timbel_dagster.warehouse.people import membership
from timbel_dagster.warehouse.schema.ids import stable_id
from timbel_dagster.warehouse.schema.models import Pipeline
from timbel_dagster.warehouse.store.upsert import bulk_upsert

SEEN = dt.datetime(2026, 11, 1, tzinfo=dt.UTC)


def know(url: str, service: str, images: dict[str, str] | None = None) -> None:
    """A Jenkins pipeline building `service`, and `images` (tag reference -> digest) listed
    in the registry."""
    row = {"id": stable_id("pipelines", "test", service), "source": "test",
           "ci_system": "jenkins", "name": service, "service": service, "repository": None,
           "default_branch": None, "url": None}  # fmt: skip
    with get_engine(url).begin() as connection:
        bulk_upsert(connection, Pipeline.__table__, [row], ["source", "name"])
        listed = []
        for reference, digest in (images or {}).items():
            ref = parse_image(reference)
            listed.append(Image(ref.registry, ref.repository, ref.tag or "", digest, OCI_MANIFEST))
        if listed:
            store_images(connection, listed, source="test", now=SEEN)


def own(url: str, service: str, team: str, members: list[str]) -> None:
    """`team` owns `service` and has `members` (users already stored): the team check of
    approvals lets the team's leads decide its requests."""
    with get_engine(url).begin() as connection:
        membership.add_team(connection, team, None, SEEN)
        for user in members:
            membership.add_member(connection, team, user)
        membership.set_owner(connection, service, team)
