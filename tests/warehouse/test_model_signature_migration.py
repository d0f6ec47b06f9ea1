"""Migration 0017 (`ml_models.artifact_signature`): a model stored before models were signed
is kept but never unpickled again; downgrading drops the column and keeps the rows."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import func, insert, inspect, select

from tests.ml.test_model_store import KEY, _payload
from timbel_dagster.ml.models.store import ModelSignatureError, load_model
from timbel_dagster.warehouse import migrate
from timbel_dagster.warehouse.engine import get_engine
from timbel_dagster.warehouse.schema.ml import MlModel


def _columns(url: str) -> set[str]:
    return {c["name"] for c in inspect(get_engine(url)).get_columns("ml_models")}


def test_a_model_stored_before_signing_is_refused_after_the_upgrade(
    database_url: str, tmp_path: Path
) -> None:
    migrate.upgrade(database_url, "0016")
    assert "artifact_signature" not in _columns(database_url)
    marker = tmp_path / "marker"
    with get_engine(database_url).begin() as connection:
        # Everything but the new column: what a 0016 warehouse holds.
        connection.execute(
            insert(MlModel).values(
                name="risk_model",
                version=4,
                code_version="risk-1",
                n_train=3,
                n_test=1,
                features=["la"],
                evaluation={"auc": 0.9},
                reason="schedule",
                artifact=_payload(marker),
            )
        )

    assert migrate.upgrade(database_url) == ("0016", migrate.head_revision())
    with get_engine(database_url).connect() as connection:
        assert connection.execute(select(MlModel.artifact_signature)).scalar_one() is None
        with pytest.raises(ModelSignatureError) as refused:
            load_model(connection, "risk_model", key=KEY)
    assert str(refused.value).startswith(
        "model risk_model v4 was stored without a signature (before signing existed, or "
        "written outside Timbel), so it is not loaded: retrain it"
    )
    assert not marker.exists()

    migrate.downgrade(database_url, "0016")
    assert "artifact_signature" not in _columns(database_url)
    with get_engine(database_url).connect() as connection:
        assert connection.execute(select(func.count()).select_from(MlModel.__table__)).scalar() == 1
