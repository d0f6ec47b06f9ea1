"""Trained models and the risk training table in the warehouse.

A model is stored with joblib as bytes beside its evaluation, so that every reader (assets,
the CLI, the approval flow, notebooks) loads exactly the estimator the asset trained, whatever
process or pod it runs in. Unpickling runs code, so each artifact is stored with a signature
(`ml/models/signing.py`) that is checked before the bytes are loaded: a row Timbel did not
sign is refused, never unpickled.
"""

from __future__ import annotations

import datetime as dt
import importlib
import io
import math
import sys
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from timbel_dagster.ml.models.signing import ModelKey, ModelSignatureError, model_key, sign, verify
from timbel_dagster.settings import get_settings

__all__ = ["ModelSignatureError", "NoModelError", "StoredModel", "load_model", "save_model"]

if TYPE_CHECKING:
    import pandas as pd
    from sqlalchemy.engine import Connection


@dataclass(frozen=True)
class StoredModel:
    name: str
    version: int
    code_version: str
    trained_at: dt.datetime
    trained_until: dt.datetime | None
    features: list[str]
    evaluation: dict[str, Any]
    estimator: Any


class NoModelError(LookupError):
    """No version of the model has been trained yet."""


# The modules a stored risk model's pickle can name, before ml/ moved into sub-packages by
# concern (#14): models trained before the move still load, the old paths naming the new modules.
MOVED_MODULES = {
    f"timbel_dagster.ml.{old}": f"timbel_dagster.ml.risk.{new}"
    for old, new in {
        "risk_advisor": "advisor",
        "risk_data": "data",
        "risk_eval": "eval",
        "risk_explain": "explain",
        "risk_features": "features",
        "risk_files": "files",
        "risk_model": "model",
        "risk_rankers": "rankers",
        "risk_scoring": "scoring",
        "risk_words": "words",
        "calibration": "calibration",
        "deployment_data": "deployment_data",
        "deployment_features": "deployment_features",
    }.items()
}


def _alias_moved_modules(artifact: bytes) -> None:
    """Let an artifact pickled before the move find its classes: each old module path it names
    becomes an alias of the module that now holds the same code."""
    for old, new in MOVED_MODULES.items():
        if old not in sys.modules and old.encode() in artifact:
            sys.modules[old] = importlib.import_module(new)


def _key(key: ModelKey | None) -> ModelKey:
    return key if key is not None else model_key(get_settings())


def save_model(
    connection: Connection,
    name: str,
    estimator: Any,
    *,
    code_version: str,
    features: list[str],
    evaluation: dict[str, Any],
    n_train: int,
    n_test: int,
    trained_until: dt.datetime | None,
    reason: str,
    key: ModelKey | None = None,
) -> int:
    """Store a new version of `name`, signed with `key` (the installation's key from the
    settings by default), and return its number."""
    import joblib
    from sqlalchemy import func, insert, select

    # lazy: warehouse.schema.ml loads SQLAlchemy; the code location loads without it
    from timbel_dagster.warehouse.schema.ml import MlModel

    buffer = io.BytesIO()
    joblib.dump(estimator, buffer)
    artifact = buffer.getvalue()
    version = (
        connection.execute(select(func.max(MlModel.version)).where(MlModel.name == name)).scalar()
        or 0
    ) + 1
    connection.execute(
        insert(MlModel).values(
            name=name,
            version=version,
            code_version=code_version,
            trained_until=trained_until,
            n_train=n_train,
            n_test=n_test,
            features=features,
            evaluation=evaluation,
            reason=reason,
            artifact=artifact,
            artifact_signature=sign(
                _key(key),
                name=name,
                version=version,
                code_version=code_version,
                features=features,
                artifact=artifact,
            ),
        )
    )
    return version


def load_model(
    connection: Connection, name: str, version: int | None = None, key: ModelKey | None = None
) -> StoredModel:
    """The newest (or the given) version of `name`.

    Raises:
        NoModelError: there is no such version.
        ModelSignatureError: the row is unsigned or does not match its signature under `key`
            (the installation's key from the settings by default); it was not unpickled.
    """
    import joblib
    from sqlalchemy import select

    # lazy: warehouse.schema.ml loads SQLAlchemy; the code location loads without it
    from timbel_dagster.warehouse.schema.ml import MlModel

    query = select(MlModel.__table__).where(MlModel.name == name)
    query = query.where(MlModel.version == version) if version else query
    row = connection.execute(query.order_by(MlModel.version.desc()).limit(1)).first()
    if row is None:
        raise NoModelError(
            f"no {name} has been trained yet: materialize ml/{name} "
            f"(timbel demo, or the ml_retrain job) first"
        )
    verify(
        _key(key),
        row.artifact_signature,
        name=row.name,
        version=row.version,
        code_version=row.code_version,
        features=row.features,
        artifact=row.artifact,
    )
    _alias_moved_modules(row.artifact)
    return StoredModel(
        name=row.name,
        version=row.version,
        code_version=row.code_version,
        trained_at=row.trained_at,
        trained_until=row.trained_until,
        features=list(row.features),
        evaluation=dict(row.evaluation),
        # Safe only because `verify` passed: Timbel itself signed exactly these bytes.
        estimator=joblib.load(io.BytesIO(row.artifact)),
    )


def training_fingerprint(table: pd.DataFrame) -> str:
    """A digest of the training table's content: the same history gives the same digest."""
    import hashlib

    import pandas as pd

    if table.empty:
        return "empty"
    ordered = table.reindex(sorted(table.columns), axis=1)
    hashed = pd.util.hash_pandas_object(ordered, index=True).to_numpy()
    return hashlib.sha256(hashed.tobytes()).hexdigest()[:32]


def _known(value: Any) -> float | None:
    number = float(value)
    return None if math.isnan(number) else number


def replace_training_rows(connection: Connection, table: pd.DataFrame) -> int:
    """Swap the whole training table for `table` (one row per deployment) in the caller's
    transaction: it is a derived snapshot, rebuilt from the warehouse every time."""
    from sqlalchemy import delete, insert

    # lazy: warehouse.schema.ml loads SQLAlchemy; the code location loads without it
    from timbel_dagster.warehouse.schema.ml import RiskTrainingRow

    features = [c for c in table.columns if c not in ("label", "service", "environment_name")]
    features.remove("started_at")
    rows = [
        {
            "deployment_id": deployment_id,
            "service": row["service"],
            "environment": row["environment_name"],
            "started_at": row["started_at"].to_pydatetime(),
            "label": int(row["label"]),
            # An unknown value (NaN) as JSON null: PostgreSQL's JSON has no NaN.
            "features": {name: _known(row[name]) for name in features},
        }
        for deployment_id, row in table.iterrows()
    ]
    connection.execute(delete(RiskTrainingRow))
    if rows:
        connection.execute(insert(RiskTrainingRow), rows)
    return len(rows)


def load_training_rows(connection: Connection) -> pd.DataFrame:
    """The training table as `deployment_features` produced it, oldest first."""
    import pandas as pd
    from sqlalchemy import select

    # lazy: warehouse.schema.ml loads SQLAlchemy; the code location loads without it
    from timbel_dagster.warehouse.schema.ml import RiskTrainingRow as R

    rows = connection.execute(
        select(
            R.deployment_id, R.service, R.environment, R.started_at, R.label, R.features
        ).order_by(R.started_at, R.deployment_id)
    ).all()
    if not rows:
        return pd.DataFrame()
    # Floats: a JSON null (an unknown value) is NaN again, as `deployment_features` had it.
    table = pd.DataFrame(
        [r.features for r in rows], index=[r.deployment_id for r in rows], dtype=float
    )
    table["label"] = [r.label for r in rows]
    table["service"] = [r.service for r in rows]
    table["environment_name"] = [r.environment for r in rows]
    table["started_at"] = pd.to_datetime([r.started_at for r in rows], utc=True)
    table.index.name = "deployment_id"
    return table
