"""Alerting and notifications as a Dagster resource: the rules, the evaluator, the sender."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import dagster as dg
from pydantic import SecretStr

from timbel_dagster.bindings.freshness import InstanceClock
from timbel_dagster.resources.prometheus import PrometheusClient
from timbel_dagster.settings import get_settings, normalise_database_url
from timbel_dagster.settings.freshness import ingestion_windows
from timbel_dagster.warehouse.engine import check_connection, get_engine

if TYPE_CHECKING:
    from timbel_dagster.notify.alerting import AlertEvaluator
    from timbel_dagster.notify.dispatch import Dispatcher
    from timbel_dagster.notify.rules import Rule


# The resource's fields that stand for a setting of the same meaning, and the secret ones.
_SETTING_OF_FIELD = {
    "slack_webhook_url": "slack_webhook_url",
    "smtp_host": "smtp_host",
    "smtp_port": "smtp_port",
    "smtp_security": "smtp_security",
    "smtp_user": "smtp_user",
    "smtp_password": "smtp_password",
    "smtp_from": "smtp_from",
    "smtp_timeout_seconds": "smtp_timeout_seconds",
    "public_url": "timbel_public_url",
    "secret_key": "timbel_secret_key",
}
_SECRET_FIELDS = frozenset({"slack_webhook_url", "smtp_password", "secret_key"})


class NotifierResource(dg.ConfigurableResource):
    """The alert rules, their evaluator and the channels they notify through.

    The code location configures it from the settings, the secrets (SLACK_WEBHOOK_URL,
    SMTP_PASSWORD, TIMBEL_SECRET_KEY, a TIMBEL_DATABASE_URL with a password) as environment
    variables. Unset fields come from the settings when a run first uses the resource:
    TIMBEL_DATABASE_URL, TIMBEL_ALERT_RULES_FILE (in sample mode, the sample's rules when it is
    unset), PROMETHEUS_URL, SLACK_WEBHOOK_URL, SMTP_*, TIMBEL_PUBLIC_URL and TIMBEL_SECRET_KEY.
    A channel that is not configured is left out with one warning, never an error (the code
    location must load without them)."""

    database_url: str | None = None
    rules_file: str | None = None
    prometheus_url: str | None = None
    max_series_per_rule: int = 1000
    slack_webhook_url: str | None = None
    smtp_host: str | None = None
    smtp_port: int | None = None
    smtp_security: str | None = None  # starttls | ssl | none
    smtp_user: str | None = None
    smtp_password: str | None = None
    smtp_from: str | None = None
    smtp_timeout_seconds: float | None = None
    public_url: str | None = None  # links in messages (TIMBEL_PUBLIC_URL)
    secret_key: str | None = None  # signs unsubscribe links (TIMBEL_SECRET_KEY)

    def _settings(self) -> Any:
        """The settings, with the fields set on this resource in place of theirs: the
        channels and links are built from settings (`Dispatcher.from_settings`)."""
        update: dict[str, object] = {}
        for field, setting in _SETTING_OF_FIELD.items():
            value = getattr(self, field)
            if value is not None:
                update[setting] = SecretStr(value) if field in _SECRET_FIELDS else value
        settings = get_settings()
        return settings.model_copy(update=update) if update else settings

    def engine(self) -> Any:
        url = (
            normalise_database_url(self.database_url)
            if self.database_url
            else self._settings().database_url
        )
        check_connection(url)
        return get_engine(url)

    def dispatcher(self, log: Any = None) -> Dispatcher:
        # lazy: notify.dispatch loads SQLAlchemy; the code location loads without it
        from timbel_dagster.notify.dispatch import Dispatcher

        return Dispatcher.from_settings(self._settings(), engine=self.engine(), log=log)

    def rules(self) -> tuple[list[Rule], list[str]]:
        """The rules of `rules_file` (default: `rule_store.rules_file`, which in sample mode
        is the sample's) and of the warehouse, with one error per rule left out."""
        # lazy: notify.rule_store loads SQLAlchemy; the code location loads without it
        from timbel_dagster.notify.rule_store import all_rules, rules_file

        return all_rules(self.engine(), self.rules_file or rules_file(self._settings()))

    def evaluator(
        self, log: Any = None, instance: dg.DagsterInstance | None = None
    ) -> AlertEvaluator:
        """The evaluator; with `instance`, the facts that read the Dagster instance
        (`ingestion_stale`: the ingestion assets' freshness windows from the settings
        against their latest materializations there) are evaluated too."""
        # lazy: notify.alerting loads SQLAlchemy; the code location loads without it
        from timbel_dagster.notify.alerting import AlertEvaluator

        settings = self._settings()
        clock = (
            InstanceClock(instance, ingestion_windows(settings)) if instance is not None else None
        )
        url = self.prometheus_url or (
            str(settings.prometheus_url) if settings.prometheus_url else None
        )
        prometheus = PrometheusClient(url, settings.prometheus_timeout_seconds) if url else None
        return AlertEvaluator(
            self.engine(),
            prometheus,
            self.dispatcher(log),
            max_series=self.max_series_per_rule,
            clock=clock,
        )
