"""Resource bindings for the code location: every resource key and the resource bound to it.

Values are resolved from the settings when a run first uses a resource, never when the code
location is loaded, so loading it reads no environment and opens no connection.
"""

from __future__ import annotations

import dagster as dg

from timbel_dagster.bindings.notifier import NotifierResource
from timbel_dagster.bindings.warehouse import WarehouseResource
from timbel_dagster.resources.gitlab.source import GitLabResource
from timbel_dagster.resources.jenkins.source import JenkinsResource
from timbel_dagster.resources.kubernetes import KubernetesResource
from timbel_dagster.resources.prometheus import PrometheusResource
from timbel_dagster.resources.sources import DeliverySourcesResource


def defs() -> dg.Definitions:
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
