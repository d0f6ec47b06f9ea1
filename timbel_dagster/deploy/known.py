"""What a deployment request may name: a service and an image Timbel knows.

A service is known when a pipeline or a deployment names it. An image is known when
`registry_images` lists its tag (or digest), a deployment ran it, a scan saw it, or a recent
build of the service published it (the `image` of its artifacts); otherwise the registry is
asked (`Requests` does that, outside any transaction), so an image pushed but not ingested
yet is accepted. A refusal names what is unknown and what is known near it.
"""

from __future__ import annotations

import difflib
from typing import TYPE_CHECKING, Any

from timbel_dagster.deploy.lookup import RequestError
from timbel_dagster.records.image_ref import parse_image
from timbel_dagster.security.image_ref import known_digest
from timbel_dagster.warehouse.schema.models import Deployment, Pipeline
from timbel_dagster.warehouse.schema.models import PipelineExecution as E
from timbel_dagster.warehouse.schema.registry import RegistryImage as R
from timbel_dagster.warehouse.schema.security import ScanResult as S

if TYPE_CHECKING:
    from sqlalchemy.engine import Connection

    from timbel_dagster.records.image_ref import ImageRef
    from timbel_dagster.security.image_ref import DigestLookup

_SHOWN = 5  # names listed in a refusal
_CLOSE = 0.75  # difflib ratio of a close match (`no-such-service` is not `cart-service`)
_BUILDS = 1000  # newest builds of a service whose published images count as known


def _listed(names: list[str]) -> str:
    more = len(names) - _SHOWN
    return ", ".join(names[:_SHOWN]) + (f" and {more} more" if more > 0 else "")


def known_services(connection: Connection) -> list[str]:
    """Every service a pipeline or a deployment names, sorted."""
    from sqlalchemy import select, union

    query = union(
        select(Pipeline.service).where(Pipeline.service.is_not(None)),
        select(Deployment.service),
    )
    return sorted({s for (s,) in connection.execute(query) if s})


def check_service(connection: Connection, service: str) -> None:
    """Refuse a service no pipeline or deployment names, with the close (or all) known ones."""
    services = known_services(connection)
    if service in services:
        return
    why = f"unknown service {service!r}: no pipeline or deployment names it"
    if not services:
        raise RequestError(
            f"{why}, and Timbel knows no services yet: ingest the CI servers "
            "(timbel ingest ...) or load the sample organisation (timbel sample)"
        )
    close = difflib.get_close_matches(service, services, n=3, cutoff=_CLOSE)
    if close:
        raise RequestError(f"{why}; did you mean {' or '.join(close)}?")
    raise RequestError(f"{why}; known services: {_listed(services)}")


def _forms(ref: ImageRef, image: str) -> list[str]:
    """The ways a deployment may have recorded the same reference."""
    return sorted({image, str(ref), *([ref.tagged] if ref.tagged else [])})


def _built(connection: Connection, service: str, ref: ImageRef) -> bool:
    """Whether one of the service's newest builds published the image (`artifacts.image`,
    `repository:tag` with or without the registry host)."""
    from sqlalchemy import select

    if not ref.tag:
        return False
    wanted = {f"{ref.repository}:{ref.tag}", ref.tagged}
    query = (
        select(E.artifacts)
        .join(Pipeline, Pipeline.id == E.pipeline_id)
        .where(Pipeline.service == service)
        .order_by(E.started_at.desc())
        .limit(_BUILDS)
    )
    return any(
        isinstance(a, dict) and a.get("image") in wanted for (a,) in connection.execute(query)
    )


def known_locally(connection: Connection, service: str, ref: ImageRef, image: str) -> bool:
    """Whether `registry_images` lists the reference's tag or digest, a deployment ran it,
    a scan saw it, or a recent build of `service` published it."""
    from sqlalchemy import select

    if ref.digest:
        listed = connection.execute(
            select(R.id).where(R.repository == ref.repository, R.digest == ref.digest).limit(1)
        ).first()
        if listed is not None:
            return True
    elif known_digest(connection, ref):
        return True
    forms = _forms(ref, image)
    ran = select(Deployment.id).where(Deployment.image.in_(forms)).limit(1)
    if connection.execute(ran).first() is not None:
        return True
    if ref.digest:  # scanned by digest: Timbel has seen the image itself
        scanned = select(S.id).where(S.artifact_digest == ref.digest).limit(1)
    else:
        scanned = select(S.id).where(S.artifact_name.in_(forms)).limit(1)
    return connection.execute(scanned).first() is not None or _built(connection, service, ref)


def image_hint(connection: Connection, ref: ImageRef, image: str) -> str:
    """What is known near an unknown image: the newest tags of its repository (in any
    registry, named in full: `shop/api` may have meant another registry's), else close
    matches among every image known, else ''."""
    from sqlalchemy import select

    tags = connection.execute(
        select(R.registry, R.tag)
        .where(R.repository == ref.repository)
        .order_by(R.last_seen.desc(), R.tag.desc())
        .limit(_SHOWN + 1)
    )
    same = list(dict.fromkeys(f"{host}/{ref.repository}:{tag}" for host, tag in tags))
    if same:
        return f"; known images of {ref.repository}: {_listed(same)}"
    listed = select(R.registry + "/" + R.repository + ":" + R.tag)
    images = {i for (i,) in connection.execute(listed)}
    images |= {i for (i,) in connection.execute(select(Deployment.image).distinct()) if i}
    close = difflib.get_close_matches(image, sorted(images), n=3, cutoff=_CLOSE)
    return f"; close matches: {', '.join(close)}" if close else ""


def unknown_image(image: str, hint: str, registry_asked: bool) -> RequestError:
    """The refusal of an image nothing knows."""
    where = (
        "nor does the registry have it"
        if registry_asked
        else "and no registry is configured to ask (HARBOR_REGISTRY)"
    )
    return RequestError(
        f"unknown image {image!r}: not in registry_images or any deployment, {where}{hint}"
    )


class KnownChecks:
    """A mixin of `Requests` (deploy/requests.py): the checks above, and the registry's
    answers about tags, asked before a transaction opens and read inside it."""

    engine: Any
    lookup: DigestLookup | None
    _answers: dict[tuple[str, str, str], str | None]

    def _ask(self, registry: str, repository: str, reference: str) -> str | None:
        """The registry's answer for a tag or digest, asked once per call (never inside a
        transaction: callers ask before they open one)."""
        key = (registry, repository, reference)
        if key not in self._answers:
            self._answers[key] = self.lookup(*key) if self.lookup else None
        return self._answers[key]

    def _answered(self, registry: str, repository: str, reference: str) -> str | None:
        """What `_ask` got: the lookup the gate uses inside a transaction."""
        return self._answers.get((registry, repository, reference))

    def _resolve_first(self, image: str) -> None:
        """Ask the registry for the tag of `image` now, before a transaction, unless its
        reference or `registry_images` already gives the digest."""
        try:
            ref = parse_image(image)
        except ValueError:
            return  # the gate will refuse the reference itself
        with self.engine.connect() as connection:
            if ref.digest or known_digest(connection, ref) or not ref.tag:
                return
        self._ask(ref.registry, ref.repository, ref.tag)

    def _resolve_request_first(self, ref: str) -> None:
        with self.engine.connect() as connection:
            image = self.find(connection, ref)["image"]
        self._resolve_first(image)

    def _check_known(self, actor_name: str, service: str, image: str) -> None:
        """Refuse a service or an image Timbel does not know (`deploy.known`); the registry
        is asked, outside any transaction, only about an image the warehouse does not know."""
        try:
            ref = parse_image(image)
        except ValueError as error:
            raise RequestError(str(error)) from None
        with self.engine.connect() as connection:
            self.actor(connection, actor_name)
            check_service(connection, service)
            if known_locally(connection, service, ref, image):
                return
            hint = image_hint(connection, ref, image)
        if self._ask(ref.registry, ref.repository, ref.digest or ref.tag or ""):
            return
        raise unknown_image(image, hint, self.lookup is not None)
