"""`Requests` as the settings configure them: the approval chains, the request lifetime, the
approval notices, the security policy and the registry that resolves unknown tags. The CLI
(`timbel deploy`) and the approvals page build it here, so both decide with the same rules.
(Moved from `cli/deploy.py` and `cli/images.py` when the page needed it too.)"""

from __future__ import annotations

import datetime as dt
import functools
import logging
from typing import TYPE_CHECKING

from timbel_dagster.deploy.chains import load_chains
from timbel_dagster.deploy.notices import approval_notifier
from timbel_dagster.deploy.requests import Requests
from timbel_dagster.security.policy_file import load_policy

if TYPE_CHECKING:
    from sqlalchemy.engine import Engine

    from timbel_dagster.security.image_ref import DigestLookup
    from timbel_dagster.settings import Settings


def registry_lookup(settings: Settings) -> DigestLookup | None:
    """The manifest HEAD of the registry the settings name (HARBOR_REGISTRY, REGISTRY_USERNAME,
    REGISTRY_PASSWORD) as a `DigestLookup`, or None when none is configured. Each tag is
    asked once per lookup made here (answers are kept)."""
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


def configured_requests(
    settings: Settings, engine: Engine, log: logging.Logger | None = None
) -> Requests:
    """Deployment requests over `engine` with everything the settings configure.

    Args:
        log: where the notification dispatcher says which channels are off.
    """
    # lazy: notify.dispatch loads Jinja2 and the channel clients; `timbel --help` loads
    # without them
    from timbel_dagster.notify.dispatch import Dispatcher

    dispatcher = Dispatcher.from_settings(settings, engine=engine, log=log)
    return Requests(
        engine,
        load_chains(settings.timbel_approval_chains_file),
        dt.timedelta(hours=settings.timbel_request_ttl_hours),
        notify=approval_notifier(dispatcher),
        policy=load_policy(settings.timbel_security_policy_file),
        # Images the warehouse does not know are looked up in HARBOR_REGISTRY, if set.
        lookup=registry_lookup(settings),
    )
