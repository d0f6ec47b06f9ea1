"""The change-risk model on projects taken one at a time, as a reviewer with other data would
run it (issue 16): each project alone, oldest 80 % of its changes to train, newest 20 % to
test, AUC on the test rows beside ranking by lines added (LApredict) in the same run.

Projects: the 4 Kamei projects and each ApacheJIT project on its own (its `project` column;
the model gets no project column, a reviewer's single-project file has none). A project is
skipped, with the reason printed, when its time split or the model's own training checks
fail (fewer than 100 changes, or one outcome only in a part), or when its test 20 % holds
fewer than `MIN_TEST_CLASS` changes of either outcome (an AUC on 2 defects says nothing).

Which projects may inform the design was fixed before any result was looked at
(`role`): Kamei's bugzilla and columba (the alphabetical first half) and every other
eligible ApacheJIT project in alphabetical order starting with the first are
*development*; jdt, postgres and the remaining ApacheJIT projects are *held out* and were
only scored once the design was settled. The design before this protocol (issue 6) had
looked at all four Kamei projects and at ApacheJIT pooled, so the held-out Kamei figures are
not fully clean; the held-out ApacheJIT projects had never been scored one at a time.

    .venv/bin/python -m benchmarks.ml_risk_projects [--data ../shared/data]
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from benchmarks.common import report
from timbel_dagster.ml.risk.data import GROUP, load_risk_csv
from timbel_dagster.ml.risk.eval import roc_auc
from timbel_dagster.ml.risk.files import time_split
from timbel_dagster.ml.risk.model import fit_risk_model

if TYPE_CHECKING:
    import pandas as pd

DEFAULT_DATA = Path(__file__).resolve().parents[1] / ".." / "shared" / "data"
KAMEI = ("bugzilla", "columba", "jdt", "postgres")
KAMEI_DEVELOPMENT = ("bugzilla", "columba")
APACHEJIT = "jit-apachejit/apachejit_test_small.csv"
MIN_TEST_CLASS = 5  # changes of each outcome the test 20 % needs for an AUC worth printing


@dataclass(frozen=True)
class Project:
    name: str
    role: str  # "development" or "held-out"
    train: pd.DataFrame
    test: pd.DataFrame


def _split(dataset: Any, name: str) -> tuple[pd.DataFrame, pd.DataFrame] | str:
    """The time split, or why the project cannot be scored."""
    try:
        train, test = time_split(dataset)
    except ValueError as error:
        return str(error).replace(dataset.source, name)
    counts = test["label"].value_counts()
    if min(counts.get(0, 0), counts.get(1, 0)) < MIN_TEST_CLASS:
        return f"test 20 % has {counts.get(1, 0)} defective, {counts.get(0, 0)} clean changes"
    return train, test


def projects(data: Path, skipped: list[str] | None = None) -> Iterator[Project]:
    """Every scorable project in a fixed order; the reasons for the others go to `skipped`."""
    skipped = skipped if skipped is not None else []
    for name in KAMEI:
        path = data / "jit-kamei2013" / f"{name}.csv"
        if not path.is_file():
            skipped.append(f"{name}: {path} is missing")
            continue
        split = _split(load_risk_csv(path, require_time=True), name)
        role = "development" if name in KAMEI_DEVELOPMENT else "held-out"
        if isinstance(split, str):
            skipped.append(f"{name}: {split}")
        else:
            yield Project(name, role, *split)
    path = data / APACHEJIT
    if not path.is_file():
        skipped.append(f"apachejit: {path} is missing")
        return
    pooled = load_risk_csv(path, require_time=True)
    eligible: list[tuple[str, pd.DataFrame, pd.DataFrame]] = []
    for project, frame in sorted(pooled.frame.groupby(GROUP), key=lambda item: str(item[0])):
        name = str(project).removeprefix("apache/")
        alone = replace(pooled, frame=frame.drop(columns=[GROUP]), group_column=None)
        split = _split(alone, name)
        if isinstance(split, str):
            skipped.append(f"{name}: {split}")
        else:
            eligible.append((name, *split))
    for position, (name, train, test) in enumerate(eligible):
        yield Project(name, "development" if position % 2 == 0 else "held-out", train, test)


def score(project: Project, fit: Callable[[pd.DataFrame], Any] | None = None) -> dict[str, Any]:
    """The model's and LApredict's AUC on one project's test rows (model fitted on its
    training rows only, without a project column)."""
    started = time.perf_counter()
    model = (fit or (lambda train: fit_risk_model(train, group=None)))(project.train)
    seconds = time.perf_counter() - started
    y = project.test["label"].to_numpy()
    return {
        "auc": roc_auc(y, model.risk(project.test)),
        "la_auc": roc_auc(y, project.test["la"]),
        "n_train": len(project.train),
        "n_test": len(project.test),
        "fit_seconds": seconds,
        "model": model,
    }


def main(data: Path) -> None:
    skipped: list[str] = []
    results: dict[str, list[tuple[str, dict[str, Any]]]] = {"development": [], "held-out": []}
    for project in projects(data, skipped):
        try:
            r = score(project)
        except ValueError as error:  # the model's own checks, e.g. one outcome in a part
            skipped.append(f"{project.name}: {error}")
            continue
        results[project.role].append((project.name, r))
        report(
            f"risk_project_{project.name}_auc",
            r["auc"],
            f"AUC ({project.role}, {r['n_train']:,}/{r['n_test']:,} rows, "
            f"fit {r['fit_seconds']:.1f} s)",
            r["auc"] / r["la_auc"],
            f"lines added {r['la_auc']:.3f}",
        )
        chosen = getattr(r["model"], "settings", None)
        weights = "/".join(f"{w:g}" for w in chosen["weights"]) if chosen else "fixed"
        print(
            f"# {project.name} ({project.role}): AUC {r['auc']:.3f}, lines added "
            f"{r['la_auc']:.3f}; blend weights {weights} (chosen on inner folds)",
            flush=True,
        )
    for reason in skipped:
        print(f"# skipped {reason}", flush=True)
    for role, rows in results.items():
        if not rows:
            continue
        mean = sum(r["auc"] for _, r in rows) / len(rows)
        la = sum(r["la_auc"] for _, r in rows) / len(rows)
        below = [name for name, r in rows if r["auc"] <= r["la_auc"]]
        worse = ", ".join(below) or "none"
        report(f"risk_projects_{role}_mean_auc", mean, f"AUC over {len(rows)}", mean / la,
               f"lines added {la:.3f}; at or below lines added: {worse}")  # fmt: skip
        print(f"# {role}: mean AUC {mean:.3f}, lines added {la:.3f}", flush=True)
    print("# design informed by: " + ", ".join(n for n, _ in results["development"]), flush=True)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    main(parser.parse_args().data)
