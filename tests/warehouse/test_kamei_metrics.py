"""Kamei's change metrics have one list of names (records/delivery.py) that storage, the
commit-metrics store and the risk model all use."""

from __future__ import annotations

from timbel_dagster.records.delivery import KAMEI_MEASURES, KAMEI_METRICS
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
