"""Every resource of the code location, configured once from the settings it loads with.

Dagster's UI shows a resource's configured values (its page and the run's config), so the
values come from the settings here, not from inside the resource when a run first uses it.
Plain values (URLs, user names, timeouts, modes, file paths, page sizes) are plain config.
A secret (a token, a password, Slack's webhook URL, a URL carrying a password such as the
warehouse's) is bound as `dg.EnvVar("NAME")`: the UI shows the variable's name, never its
value, and the run worker reads the value from its own environment when the run starts.

EnvVar can only name a variable of the process environment. A secret the settings took from
the `.env` file (or from an override passed to them) is therefore left unset, and the
resource reads it from the settings when a run first uses it, as a resource built without
configuration does (`bindings.definitions.defs()` without settings: the tests).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

import dagster as dg
from pydantic import AnyHttpUrl, SecretStr, TypeAdapter

from timbel_dagster.bindings.notifier import NotifierResource
from timbel_dagster.bindings.warehouse import WarehouseResource
from timbel_dagster.resources.gitlab.source import GitLabResource
from timbel_dagster.resources.jenkins.source import JenkinsResource
from timbel_dagster.resources.kubernetes import KubernetesResource
from timbel_dagster.resources.prometheus import PrometheusResource
from timbel_dagster.resources.registry import RegistryResource
from timbel_dagster.resources.sources import DeliverySourcesResource
from timbel_dagster.resources.trivy import TrivyResource
from timbel_dagster.settings import normalise_database_url, secret_from_environment

if TYPE_CHECKING:
    from timbel_dagster.settings import Settings


def secret(
    variable: str,
    value: SecretStr | str | None,
    normalise: Callable[[str], str] = str,
) -> str | None:
    """`dg.EnvVar(variable)` when the process environment holds the setting's `value`
    (compared after `normalise`, the setting's own parsing); None when the setting is unset
    or its value came from elsewhere (the `.env` file), so the resource reads the settings."""
    if value is None:
        return None
    wanted = value.get_secret_value() if isinstance(value, SecretStr) else value
    found = secret_from_environment(variable)
    if found is None:
        return None
    try:
        same = normalise(found) == wanted
    except ValueError:  # the environment's value is not the one the settings parsed
        same = False
    return dg.EnvVar(variable) if same else None


def _http_url(raw: str) -> str:
    """A URL as the settings' `AnyHttpUrl` renders it (a bare host gains a trailing slash)."""
    return str(TypeAdapter(AnyHttpUrl).validate_python(raw))


def url(variable: str, value: object | None) -> str | None:
    """A URL setting: plain config, unless it carries a password (`user:password@host`),
    which makes it a secret."""
    if value is None:
        return None
    text = str(value)
    return secret(variable, text, _http_url) if urlsplit(text).password else text


def database_url(settings: Settings) -> str:
    """The warehouse URL: TIMBEL_DATABASE_URL (a secret when it carries a password) or the
    SQLite file in TIMBEL_HOME. Empty when it carries a password that only the `.env` file
    holds: WarehouseResource and NotifierResource then read the settings at run time."""
    configured = settings.timbel_database_url
    if configured is None or not urlsplit(configured).password:
        return settings.database_url
    return secret("TIMBEL_DATABASE_URL", configured, normalise_database_url) or ""


def _path(value: object | None) -> str | None:
    return str(value) if value is not None else None


def configured_resources(settings: Settings) -> dict[str, dg.ConfigurableResource]:
    """Every resource key of the code location, bound to a resource configured from
    `settings`. The delivery sources hold the same Jenkins, GitLab and Prometheus instances
    as their own keys, so the UI shows them once and links them."""
    jenkins = JenkinsResource(
        url=url("JENKINS_URL", settings.jenkins_url),
        user=settings.jenkins_user,
        token=secret("JENKINS_TOKEN", settings.jenkins_token),
        jobs=list(settings.jenkins_jobs),
        timeout_seconds=settings.jenkins_timeout_seconds,
    )
    gitlab = GitLabResource(
        url=url("GITLAB_URL", settings.gitlab_url),
        token=secret("GITLAB_TOKEN", settings.gitlab_token),
        projects=list(settings.gitlab_projects),
        max_requests_per_second=settings.gitlab_max_requests_per_second,
    )
    prometheus = PrometheusResource(
        url=url("PROMETHEUS_URL", settings.prometheus_url),
        timeout_seconds=settings.prometheus_timeout_seconds,
    )
    registry = RegistryResource(
        url=url("HARBOR_REGISTRY", settings.harbor_registry),
        username=settings.registry_username,
        password=secret("REGISTRY_PASSWORD", settings.registry_password),
        token_realms=list(settings.timbel_registry_token_realms),
    )
    clusters_file = _path(settings.timbel_clusters_file)
    sources = DeliverySourcesResource(
        mode="sample" if settings.timbel_sample_data else "live",
        sample_seed=settings.timbel_sample_seed,
        # Unset, the sample ends today: decided by each run, not when the location loaded.
        sample_end_date=(
            settings.timbel_sample_end_date.isoformat() if settings.timbel_sample_end_date else None
        ),
        clusters_file=clusters_file,
        git_repositories=list(settings.timbel_git_repositories),
        git_home=str(settings.timbel_home),
        jenkins=jenkins,
        gitlab=gitlab,
        prometheus=prometheus,
        registry=registry,
        trivy=TrivyResource.from_settings(settings),
    )
    warehouse_url = database_url(settings) or None
    notifier = NotifierResource(
        database_url=warehouse_url,
        # Unset, the sample's rules in sample mode (notify.rule_store decides at run time).
        rules_file=_path(settings.timbel_alert_rules_file),
        prometheus_url=url("PROMETHEUS_URL", settings.prometheus_url),
        slack_webhook_url=secret("SLACK_WEBHOOK_URL", settings.slack_webhook_url),
        smtp_host=settings.smtp_host,
        smtp_port=settings.smtp_port,
        smtp_security=settings.smtp_security,
        smtp_user=settings.smtp_user,
        smtp_password=secret("SMTP_PASSWORD", settings.smtp_password),
        smtp_from=settings.smtp_from,
        smtp_timeout_seconds=settings.smtp_timeout_seconds,
        public_url=url("TIMBEL_PUBLIC_URL", settings.timbel_public_url),
        secret_key=secret("TIMBEL_SECRET_KEY", settings.timbel_secret_key),
    )
    return {
        "warehouse": WarehouseResource(database_url=warehouse_url),
        "sources": sources,
        "jenkins": jenkins,
        "gitlab": gitlab,
        "kubernetes": KubernetesResource(clusters_file=clusters_file),
        "prometheus": prometheus,
        "notifier": notifier,
    }
