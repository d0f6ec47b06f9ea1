"""Kamei's change metrics have one list of names (records/delivery.py) that storage, the
commit-metrics store and the risk model all use; the file-history measures have another, which
the CSV risk model (public datasets: Kamei's 14 only) leaves out."""

from __future__ import annotations

from timbel_dagster.records.delivery import HISTORY_MEASURES, KAMEI_MEASURES, KAMEI_METRICS
from timbel_dagster.warehouse.schema.models import Commit


def test_the_commits_table_has_a_column_for_every_metric() -> None:
    columns = set(Commit.__table__.columns.keys())
    assert set(KAMEI_METRICS) <= columns
    assert len(KAMEI_METRICS) == len(set(KAMEI_METRICS)) == 14


def test_the_measures_are_numbers_and_fix_is_the_one_flag() -> None:
    types = {name: Commit.__table__.columns[name].type.python_type for name in KAMEI_METRICS}
    assert {name for name, kind in types.items() if kind is bool} == {"fix"}
    assert [name for name in KAMEI_METRICS if types[name] is not bool] == list(KAMEI_MEASURES)


def test_the_risk_model_learns_from_the_same_names() -> None:
    from timbel_dagster.ml.risk.data import FEATURES

    assert FEATURES is KAMEI_METRICS


def test_the_file_history_measures_are_nullable_numbers_beside_kameis() -> None:
    columns = Commit.__table__.columns
    assert not set(HISTORY_MEASURES) & set(KAMEI_METRICS)
    for name in HISTORY_MEASURES:
        assert columns[name].type.python_type is float and columns[name].nullable


def test_the_csv_model_keeps_kameis_14() -> None:
    from timbel_dagster.ml.changes.metrics import METRIC_NAMES
    from timbel_dagster.ml.risk.deployment_data import CHANGE_COLUMNS

    assert METRIC_NAMES == KAMEI_METRICS
    assert (*KAMEI_METRICS, *HISTORY_MEASURES) == CHANGE_COLUMNS
