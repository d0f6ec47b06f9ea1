"""The deployment-request service as the settings configure it, and the request the CLI and
the API both make: requested, then assessed by the risk advisor for its approvers."""

from __future__ import annotations

import datetime as dt
import functools
import logging
from typing import TYPE_CHECKING, Any

from timbel_dagster.deploy.chains import load_chains
from timbel_dagster.deploy.notices import approval_notifier
from timbel_dagster.deploy.requests import Requests
from timbel_dagster.ml.risk.scoring import score_request
from timbel_dagster.security.policy_file import load_policy

if TYPE_CHECKING:
    from sqlalchemy.engine import Engine

    from timbel_dagster.security.image_ref import DigestLookup
    from timbel_dagster.settings import Settings

# Which channels are off is the operators' business (the sensors log it), not noise on every
# request a developer makes.
_CHANNELS_LOG = "timbel_dagster.deploy.channels"


def registry_lookup(settings: Settings) -> DigestLookup | None:
    """The manifest HEAD of the registry the settings name (HARBOR_REGISTRY, REGISTRY_USERNAME,
    REGISTRY_PASSWORD) as a `DigestLookup`, or None when none is configured. Each tag is
    asked once per lookup made (answers are kept)."""
    # lazy: resources.registry loads Dagster; `timbel --help` loads without it
    from timbel_dagster.resources.registry import RegistryResource

    if not settings.harbor_registry:
        return None
    secret = settings.registry_password
    registry = RegistryResource(
        url=str(settings.harbor_registry),
        username=settings.registry_username,
        password=secret.get_secret_value() if secret else None,
    )
    return functools.cache(registry.find_digest)


def requests_from_settings(settings: Settings, engine: Engine) -> Requests:
    """Deployment requests over `engine` with the chains, expiry, security policy, registry
    and notification channels the settings name."""
    # lazy: notify.dispatch loads Jinja2; `timbel --help` loads without it
    from timbel_dagster.notify.dispatch import Dispatcher

    quiet = logging.getLogger(_CHANNELS_LOG)
    quiet.setLevel(logging.ERROR)
    dispatcher = Dispatcher.from_settings(settings, engine=engine, log=quiet)
    return Requests(
        engine,
        load_chains(settings.timbel_approval_chains_file),
        dt.timedelta(hours=settings.timbel_request_ttl_hours),
        notify=approval_notifier(dispatcher),
        policy=load_policy(settings.timbel_security_policy_file),
        # Images the warehouse does not know are looked up in HARBOR_REGISTRY, if set.
        lookup=registry_lookup(settings),
    )


def assess(engine: Engine, settings: Settings, number: int) -> tuple[dict | None, str | None]:
    """The risk advisor's assessment of request `number`, stored on it for its approvers, or
    (None, why not): a request is never refused because there is no model yet or its image's
    commit is unknown."""
    try:
        return score_request(engine, settings, str(number)), None
    except LookupError as error:
        return None, f"not assessed ({error})"


def request_deployment(
    requests: Requests,
    settings: Settings,
    actor: str,
    service: str,
    image: str,
    group: str,
    reason: str,
) -> dict[str, Any]:
    """Make the request (audited by `Requests.request`), assess a pending one and attach its
    approval steps. `risk_note` says why there is no `risk`, when there is none.

    Raises:
        RequestError: the request was refused (audited; nothing changed).
    """
    made = requests.request(actor, service, image, group, reason)
    if made["status"] == "pending":
        made["risk"], made["risk_note"] = assess(requests.engine, settings, made["number"])
    with requests.engine.connect() as connection:
        made["steps"] = requests.steps(connection, made["id"])
    return made
