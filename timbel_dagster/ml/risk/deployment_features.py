"""One feature row per deployment: what it shipped, how its build went, the service's recent
history and when it happened; and its outcome.

Every history feature of a deployment uses only what was known when it started (earlier
deployments, incidents opened before it), so that a model trained on these rows can score a
pending request the same way.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from timbel_dagster.records.delivery import HISTORY_MEASURES

if TYPE_CHECKING:
    import pandas as pd

    from timbel_dagster.ml.risk.deployment_data import DeliveryFrames

FAILED_STATUSES = ("failed", "rolled_back")
ENVIRONMENT_RANK = {"dev": 0, "staging": 1, "prod": 2}
# How each per-commit metric is summarised over the commits of one deployment: sizes add
# up, spread and risk take the worst commit, experience the least experienced. lt, the size
# of the touched files before a commit, takes the largest commit's, as `timbel
# analyze-changes` does (ml/changes/deployments.py): commits of one deployment that touch the
# same files would count those files once per commit in a sum.
CHANGE_AGGREGATES = {
    "la": "sum",
    "ld": "sum",
    "lt": "max",
    "nf": "sum",
    "ns": "max",
    "nd": "max",
    "entropy": "max",
    "fix": "max",
    "ndev": "max",
    "nuc": "max",
    "age": "mean",
    "exp": "min",
    "rexp": "mean",
    "sexp": "mean",
    # The touched files' history takes the worst commit, as nuc does: the most often fixed
    # files and the most churned ones the deployment touches. Not the sum: commits of one
    # deployment that touch the same files would count the same earlier fixes and lines
    # once per commit (a later commit's window even holds the earlier commits' own lines).
    "prior_fixes": "max",
    "recent_churn": "max",
}
CHANGE_FEATURES = ("n_commits", "n_authors", *CHANGE_AGGREGATES)
PIPELINE_FEATURES = ("build_failed_stages", "build_retried", "build_duration_drift", "flaky_rate")
HISTORY_FEATURES = ("recent_failure_rate", "hours_since_incident", "deploys_last_7d")
TIMING_FEATURES = ("hour", "weekday", "friday_or_weekend", "hours_since_previous", "environment")
FEATURES = (*CHANGE_FEATURES, *PIPELINE_FEATURES, *HISTORY_FEATURES, *TIMING_FEATURES)
HISTORY_WINDOW = 10  # earlier deployments whose outcomes make the recent failure rate
NO_INCIDENT_HOURS = 24.0 * 90  # "no incident seen": the sample organisation's whole history


def outcomes(frames: DeliveryFrames) -> pd.Series:
    """1 for a deployment that failed, was rolled back or caused an incident, else 0."""
    deployments = frames.deployments
    caused = set(frames.incidents["caused_by_deployment_id"].dropna())
    failed = deployments["status"].isin(FAILED_STATUSES) | deployments["id"].isin(caused)
    return failed.astype(int).set_axis(deployments["id"])


def change_features(shipped: pd.DataFrame) -> pd.DataFrame:
    """The commits' metrics aggregated per deployment (index: deployment id). A file-history
    metric no shipped commit carries stays NaN; `max` skips the commits without it."""
    import pandas as pd

    if shipped.empty:
        return pd.DataFrame(columns=list(CHANGE_FEATURES))
    frame = shipped.copy()
    # NULL reads as None: floats, so that it is NaN to the aggregates.
    frame[list(CHANGE_AGGREGATES)] = frame[list(CHANGE_AGGREGATES)].astype(float)
    grouped = frame.groupby("deployment_id")
    features = grouped.agg(CHANGE_AGGREGATES)
    features.insert(0, "n_authors", grouped["author"].nunique())
    features.insert(0, "n_commits", grouped.size())
    return features


def _pipeline_features(deployments: pd.DataFrame, executions: pd.DataFrame) -> pd.DataFrame:
    """The deployment's own build, compared with the builds of the same pipeline before it."""
    import pandas as pd

    builds = executions.sort_values("started_at").copy()
    by_pipeline = builds.groupby("pipeline_id")
    # Medians and rates over the previous builds only (shift), so a build is not its own norm.
    builds["typical_duration"] = by_pipeline["duration"].transform(
        lambda d: d.shift().rolling(20, min_periods=1).median()
    )
    builds["flaky_rate"] = by_pipeline["max_attempt"].transform(
        lambda a: (a.shift() > 1).astype(float).rolling(30, min_periods=1).mean()
    )
    builds = builds.set_index("id")
    joined = deployments[["id", "execution_id"]].join(builds, on="execution_id")
    drift = joined["duration"] / joined["typical_duration"]
    return pd.DataFrame(
        {
            "build_failed_stages": joined["failed_stages"].fillna(0).to_numpy(float),
            "build_retried": (joined["max_attempt"].fillna(1) > 1).to_numpy(float),
            "build_duration_drift": drift.where(drift.notna(), 1.0).to_numpy(float),
            "flaky_rate": joined["flaky_rate"].fillna(0).to_numpy(float),
        },
        index=deployments["id"],
    )


def _history_features(
    deployments: pd.DataFrame, labels: pd.Series, incidents: pd.DataFrame
) -> pd.DataFrame:
    """Per service and environment: how the last deployments went, when the last incident
    opened, how busy the service has been."""
    import numpy as np
    import pandas as pd

    rows: dict[object, dict[str, float]] = {}
    ordered = deployments.sort_values("started_at")
    for (service, environment), group in ordered.groupby(["service", "environment"]):
        opened = np.sort(
            incidents.loc[
                (incidents["service"] == service) & (incidents["environment"] == environment),
                "opened_at",
            ].to_numpy("datetime64[ns]")
        )
        starts = group["started_at"].dt.tz_convert(None).to_numpy("datetime64[ns]")
        finished = group["completed_at"].dt.tz_convert(None).to_numpy("datetime64[ns]")
        outcome = labels.reindex(group["id"]).to_numpy(float)
        for i, deployment_id in enumerate(group["id"]):
            # Only deployments that had finished when this one started have known outcomes.
            known = [j for j in range(i) if not np.isnat(finished[j]) and finished[j] <= starts[i]]
            recent = outcome[known[-HISTORY_WINDOW:]] if known else np.array([])
            before = opened[opened < starts[i]]
            week_ago = starts[i] - np.timedelta64(7, "D")
            rows[deployment_id] = {
                "recent_failure_rate": float(recent.mean()) if recent.size else 0.0,
                "hours_since_incident": float((starts[i] - before[-1]) / np.timedelta64(1, "h"))
                if before.size
                else NO_INCIDENT_HOURS,
                "deploys_last_7d": float((starts[:i] >= week_ago).sum()),
                "hours_since_previous": float((starts[i] - starts[i - 1]) / np.timedelta64(1, "h"))
                if i
                else NO_INCIDENT_HOURS,
            }
    return pd.DataFrame.from_dict(rows, orient="index").reindex(deployments["id"])


def deployment_features(frames: DeliveryFrames) -> pd.DataFrame:
    """The feature table: one row per release or hotfix (rollbacks are the remedy, not a
    change), indexed by deployment id, with `FEATURES`, `label`, `service`, `environment_name`
    and `started_at`."""
    import pandas as pd

    labels = outcomes(frames)
    deployments = frames.deployments[frames.deployments["kind"] != "rollback"].reset_index(
        drop=True
    )
    change = change_features(frames.shipped).reindex(deployments["id"])
    # A deployment that shipped no commit touched nothing: 0 for every change feature. One
    # whose commits lack the file history (stored before migration 0029, or from a source
    # that has no files) keeps NaN there: unknown, which the model scores as the training
    # median (`RiskModel`), not as "never fixed, never changed".
    shipped_nothing = change["n_commits"].isna()
    change.loc[shipped_nothing, list(HISTORY_MEASURES)] = 0.0
    change = change.fillna({c: 0.0 for c in change.columns if c not in HISTORY_MEASURES})
    pipeline = _pipeline_features(deployments, frames.executions)
    history = _history_features(deployments, labels, frames.incidents)
    started = deployments.set_index("id")["started_at"]
    timing = pd.DataFrame(
        {
            "hour": started.dt.hour.astype(float),
            "weekday": started.dt.day_of_week.astype(float),
            "friday_or_weekend": (started.dt.day_of_week >= 4).astype(float),
            "environment": deployments.set_index("id")["environment"]
            .map(ENVIRONMENT_RANK)
            .fillna(0)
            .astype(float),
        }
    )
    table = pd.concat([change, pipeline, history, timing], axis=1)[list(FEATURES)]
    table = table.astype(float)
    table["label"] = labels.reindex(table.index).fillna(0).astype(int)
    table["service"] = deployments.set_index("id")["service"]
    table["environment_name"] = deployments.set_index("id")["environment"]
    table["started_at"] = started
    table.index.name = "deployment_id"
    return table.sort_values("started_at")
