"""Alerting and notifications as a Dagster resource: the rules, the evaluator, the sender."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import dagster as dg

from timbel_dagster.settings import get_settings, normalise_database_url

if TYPE_CHECKING:
    from timbel_dagster.notify.alerting import AlertEvaluator
    from timbel_dagster.notify.dispatch import Dispatcher
    from timbel_dagster.notify.rules import Rule


class NotifierResource(dg.ConfigurableResource):
    """Unset fields come from TIMBEL_DATABASE_URL, TIMBEL_ALERT_RULES_FILE (in sample mode, the
    sample's rules when it is unset) and PROMETHEUS_URL.
    Channels come from SLACK_WEBHOOK_URL and SMTP_*; a channel that is not configured is left
    out with one warning, never an error (the code location must load without them)."""

    database_url: str | None = None
    rules_file: str | None = None
    prometheus_url: str | None = None
    max_series_per_rule: int = 1000

    def _settings(self) -> Any:
        return get_settings()

    def engine(self) -> Any:
        from timbel_dagster.warehouse.engine import check_connection, get_engine

        url = (
            normalise_database_url(self.database_url)
            if self.database_url
            else self._settings().database_url
        )
        check_connection(url)
        return get_engine(url)

    def dispatcher(self, log: Any = None) -> Dispatcher:
        from timbel_dagster.notify.dispatch import Dispatcher

        return Dispatcher.from_settings(self._settings(), engine=self.engine(), log=log)

    def rules(self) -> tuple[list[Rule], list[str]]:
        """The rules of `rules_file` (default: `rule_store.rules_file`, which in sample mode
        is the sample's) and of the warehouse, with one error per rule left out."""
        from timbel_dagster.notify.rule_store import all_rules, rules_file

        return all_rules(self.engine(), self.rules_file or rules_file(self._settings()))

    def evaluator(self, log: Any = None) -> AlertEvaluator:
        from timbel_dagster.notify.alerting import AlertEvaluator
        from timbel_dagster.resources.prometheus import PrometheusClient

        settings = self._settings()
        url = self.prometheus_url or (
            str(settings.prometheus_url) if settings.prometheus_url else None
        )
        prometheus = PrometheusClient(url, settings.prometheus_timeout_seconds) if url else None
        return AlertEvaluator(
            self.engine(), prometheus, self.dispatcher(log), max_series=self.max_series_per_rule
        )
