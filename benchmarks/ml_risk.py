"""The change-risk model against its baselines on the shared public JIT datasets.

Each dataset is split in time order (oldest 80 % to train, newest 20 % to test) and scored
by `timbel_dagster.ml.risk.files.evaluate_csv`, which fits the model and computes the
baselines in the same run: a default random forest on the same metrics, ranking by lines
added (LApredict), and reviewing the smallest changes first.
Targets (issue 6): on each Kamei project, AUC above the forest and above lines added, and
recall at 20 % of the review effort above smallest-first; on ApacheJIT, AUC >= 0.86.
The data lives in ../shared/data (next to the repository), or in --data.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from benchmarks.common import report

DATASETS = (
    ("bugzilla", "jit-kamei2013/bugzilla.csv"),
    ("columba", "jit-kamei2013/columba.csv"),
    ("jdt", "jit-kamei2013/jdt.csv"),
    ("postgres", "jit-kamei2013/postgres.csv"),
    ("apachejit", "jit-apachejit/apachejit_test_small.csv"),
)
DEFAULT_DATA = Path(__file__).resolve().parents[1] / ".." / "shared" / "data"


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


def main(data: Path, group: str) -> None:
    for name, relative in DATASETS:
        path = data / relative
        if not path.is_file():
            print(f"# {name}: skipped, {path} is missing", flush=True)
            continue
        bench(name, path, group)


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
