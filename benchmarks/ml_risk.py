"""The change-risk model against its baselines on the shared public JIT datasets.

Each dataset is split in time order (oldest 80 % to train, newest 20 % to test) and scored
by `timbel_dagster.ml.risk.files.evaluate_csv`, which fits the model and computes the
baselines in the same run: a default random forest on the same metrics, ranking by lines
added (LApredict), and reviewing the smallest changes first.
Targets (issue 6): on each Kamei project, AUC above the forest and above lines added, and
recall at 20 % of the review effort above smallest-first; on ApacheJIT, AUC >= 0.86.

The explanations: the model fitted on bugzilla's and ApacheJIT's oldest 80 % explains its
first test changes (exact Shapley values, `RiskModel.contributions`), timed beside the
implementation it replaced, which scores every coalition of every player (median of 3
alternating runs; the largest difference between the two is printed too).
The data lives in ../shared/data (next to the repository), or in --data.
"""

from __future__ import annotations

import argparse
import math
import statistics
import time
from pathlib import Path
from typing import TYPE_CHECKING

from benchmarks.common import report

if TYPE_CHECKING:
    import pandas as pd

    from timbel_dagster.ml.risk.model import RiskModel

DATASETS = (
    ("bugzilla", "jit-kamei2013/bugzilla.csv"),
    ("columba", "jit-kamei2013/columba.csv"),
    ("jdt", "jit-kamei2013/jdt.csv"),
    ("postgres", "jit-kamei2013/postgres.csv"),
    ("apachejit", "jit-apachejit/apachejit_test_small.csv"),
)
DEFAULT_DATA = Path(__file__).resolve().parents[1] / ".." / "shared" / "data"
EXPLAINED = ("bugzilla", "apachejit")  # 14 metrics, many at the median; 13 and the project
EXPLAINED_ROWS = 20


def bench(name: str, path: Path, group: str) -> None:
    from timbel_dagster.ml.risk.files import evaluate_csv

    started = time.perf_counter()
    r = evaluate_csv(data=path, group=group)
    seconds = time.perf_counter() - started
    rf, la = r["baseline_rf_auc"], r["baseline_la_auc"]
    smallest = r["baseline_smallest_first_recall_at_20pct_effort"]
    report(f"risk_{name}_auc", r["auc"], "AUC", r["auc"] / rf, f"random forest {rf:.3f}")
    report(f"risk_{name}_auc_vs_la", r["auc"], "AUC", r["auc"] / la, f"lines added {la:.3f}")
    report(
        f"risk_{name}_recall_at_20pct_effort",
        r["recall_at_20pct_effort"],
        "recall",
        r["recall_at_20pct_effort"] / smallest,
        f"smallest first {smallest:.3f}",
    )
    report(
        f"risk_{name}_pr_auc",
        r["pr_auc"],
        "PR-AUC",
        r["pr_auc"] / r["baseline_rf_pr_auc"],
        f"random forest {r['baseline_rf_pr_auc']:.3f}",
    )
    report(f"risk_{name}_brier", r["brier"], "Brier")
    # The advice at the default costs (a failure 10, a review 1, a held-back change 10, a
    # review catching half the failures) against approving every change.
    approve_all = r["baseline_approve_all_cost_per_change"]
    report(f"risk_{name}_advice_cost_per_change", r["advice_cost_per_change"], "cost",
           r["advice_cost_per_change"] / approve_all, f"approve all {approve_all:.3f}")  # fmt: skip
    report(f"risk_{name}_evaluation_seconds", seconds, f"s for {r['n_train'] + r['n_test']:,} rows")


def every_coalition(model: RiskModel, frame: pd.DataFrame) -> pd.DataFrame:
    """The baseline: the Shapley values as `explain.shapley_contributions` computed them
    before it skipped null players, all 2**players mixes of each row scored (16,384 mixes a
    model call)."""
    import numpy as np
    import pandas as pd

    from timbel_dagster.ml.risk.features import raw_metrics

    features = list(model.features)
    players = features + (["group"] if model.group else [])
    m = len(players)
    values = raw_metrics(frame, features, model.medians).to_numpy()
    groups = frame[model.group].tolist() if model.group else []
    baseline = np.array([model.medians[f] for f in features])
    masks = np.arange(2**m)
    members = ((masks[:, None] >> np.arange(m)) & 1).astype(bool)
    sizes = members.sum(axis=1)
    weights = np.array([math.factorial(s) * math.factorial(m - s - 1) for s in range(m)]) / (
        math.factorial(m)
    )
    result = np.zeros((len(values), m))
    batch = max(1, 16_384 // 2**m)
    for first in range(0, len(values), batch):
        rows = range(first, min(first + batch, len(values)))
        mixes = pd.DataFrame(
            np.concatenate(
                [np.where(members[:, : len(features)], values[r], baseline) for r in rows]
            ),
            columns=features,
        )
        if model.group:
            mixes[model.group] = np.concatenate(
                [np.where(members[:, -1], groups[r], None) for r in rows]
            )
        scored = model.log_odds(mixes).reshape(len(rows), 2**m)
        for r, scores in zip(rows, scored, strict=True):
            for i in range(m):
                without = ~members[:, i]
                gain = scores[masks[without] | (1 << i)] - scores[without]
                result[r, i] = float((weights[sizes[without]] * gain).sum())
    return pd.DataFrame(result, index=frame.index, columns=players)


def bench_explanations(name: str, path: Path, group: str) -> None:
    import numpy as np

    from timbel_dagster.ml.risk.data import load_risk_csv
    from timbel_dagster.ml.risk.files import time_split
    from timbel_dagster.ml.risk.model import fit_risk_model

    train, test = time_split(load_risk_csv(path, group=group))
    model = fit_risk_model(train)
    rows = test.iloc[:EXPLAINED_ROWS]
    players = len(model.features) + bool(model.group)
    seconds: dict[str, list[float]] = {"new": [], "old": []}
    results = {}
    for _ in range(3):  # alternating, so that a busy moment of the machine hits both
        for which, explain in (
            ("old", lambda: every_coalition(model, rows)),
            ("new", lambda: model.contributions(rows)),
        ):
            started = time.perf_counter()
            results[which] = explain()
            seconds[which].append(time.perf_counter() - started)
    new, old = statistics.median(seconds["new"]), statistics.median(seconds["old"])
    difference = float(np.abs(results["new"].to_numpy() - results["old"].to_numpy()).max())
    report(
        f"risk_{name}_explain_seconds",
        new,
        f"s for {len(rows)} changes, {players} players",
        new / old,
        f"every coalition {old:.2f} s; largest difference {difference:.1e}",
    )


def main(data: Path, group: str) -> None:
    for name, relative in DATASETS:
        path = data / relative
        if not path.is_file():
            print(f"# {name}: skipped, {path} is missing", flush=True)
            continue
        bench(name, path, group)
        if name in EXPLAINED:
            bench_explanations(name, path, group)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument(
        "--group",
        default="auto",
        help="repository column for the model ('none': metrics only; ApacheJIT has 'project')",
    )
    arguments = parser.parse_args()
    main(arguments.data, arguments.group)
