"""Resource bindings for the code location: every resource key and the resource bound to it.

Loading the code location (`timbel_dagster.definitions.defs`) passes the settings it read:
each resource is configured from them (`bindings.configured`), so the Dagster UI shows its
configuration, secrets as the names of their environment variables. Without settings (the
tests) every resource is bound bare and reads the settings when a run first uses it. Either
way loading opens no connection.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import dagster as dg

from timbel_dagster.bindings.configured import configured_resources
from timbel_dagster.bindings.notifier import NotifierResource
from timbel_dagster.bindings.warehouse import WarehouseResource
from timbel_dagster.resources.gitlab.source import GitLabResource
from timbel_dagster.resources.jenkins.source import JenkinsResource
from timbel_dagster.resources.kubernetes import KubernetesResource
from timbel_dagster.resources.prometheus import PrometheusResource
from timbel_dagster.resources.sources import DeliverySourcesResource

if TYPE_CHECKING:
    from timbel_dagster.settings import Settings


def defs(settings: Settings | None = None) -> dg.Definitions:
    if settings is not None:
        return dg.Definitions(resources=configured_resources(settings))
    return dg.Definitions(
        resources={
            "warehouse": WarehouseResource(),
            "sources": DeliverySourcesResource(),
            "jenkins": JenkinsResource(),
            "gitlab": GitLabResource(),
            "kubernetes": KubernetesResource(),
            "prometheus": PrometheusResource(),
            "notifier": NotifierResource(),
        }
    )
