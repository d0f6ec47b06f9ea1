"""Our git change metrics and the risk model on real repositories with real defect labels.

For each `--repo PROJECT=PATH` (PROJECT as ApacheJIT's `project` column names it, e.g.
`apache/kafka`; PATH a git repository, bare or not, read only):

1. `commit_metrics` walks the whole history (commits walked, seconds); its commits are joined
   by sha to ApacheJIT's labelled commits of that project.
2. Agreement: per metric, Spearman's rho between our value and ApacheJIT's on the same
   commits, the median ratio (ours / ApacheJIT's, rows where both are above 0) and the share
   of equal values, each beside whether ApacheJIT defines the metric differently
   (`COMPARED`). Where our output allows, the *converted* share re-expresses our value in
   ApacheJIT's definition (e.g. a directory's last name for nd), which checks our computation
   through the difference. A metric defined alike that agrees poorly is flagged.
3. Risk on real labels: the project's labelled commits split in time as
   `benchmarks.ml_risk_projects` splits them (oldest 80 % by author date to train), AUC on
   the newest 20 % of ranking by lines added (LApredict), of the risk model fitted on
   ApacheJIT's metrics and of the same model fitted on ours, all on the same rows;
   `--extra a,b` adds a variant with more per-commit metrics of `CommitMetrics`.

Roles follow `ml_risk_projects`' fixed protocol: a project it scores keeps its role there
(development or held out); one it skips is scored here too and marked not eligible. Each
AUC is printed with Hanley and McNeil's standard error: the test parts are small.
The mirrors are not in CI, so this is run by hand and not by `make bench`:

    .venv/bin/python -m benchmarks.ml_risk_history \\
        --repo apache/kafka=/work/.mirror/apache+kafka/repo [--repo ...] [--extra a,b]
"""

from __future__ import annotations

import argparse
import math
import time
from dataclasses import fields, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from benchmarks.common import report
from benchmarks.history_repos import readable_repository
from benchmarks.ml_risk_projects import APACHEJIT, DEFAULT_DATA, KAMEI, projects
from timbel_dagster.ml.changes.git_history import require_repository
from timbel_dagster.ml.changes.metrics import (
    METRIC_NAMES,
    CommitMetrics,
    commit_metrics,
    directory,
)
from timbel_dagster.ml.risk.data import FEATURES, GROUP, LABEL, load_risk_csv
from timbel_dagster.ml.risk.eval import roc_auc
from timbel_dagster.ml.risk.files import time_split
from timbel_dagster.ml.risk.model import fit_risk_model

if TYPE_CHECKING:
    import pandas as pd

    from timbel_dagster.ml.risk.data import RiskDataset

# (our metric, how ApacheJIT's differs; "" = defined alike). ApacheJIT's metrics file
# (`apache_metrics_kamei.csv`) was made outside the scripts its repository publishes
# (hosseinkshvrz/apachejit: `dataset_construction.ipynb` only merges it in), so these were
# found by re-implementing candidate definitions and matching its values on kafka, zeppelin
# and groovy (share of labelled commits matched exactly in brackets); `fix` comes from its
# issue linking (`data_linking_filtering.ipynb`). Beyond each metric, ApacheJIT walks the
# commits in author-date order where we walk them as they landed (parents first, committer
# time): in zeppelin, whose pull requests land weeks after they were written, that alone
# moves every history and experience metric.
COMPARED = (
    ("la", ""),
    ("ld", ""),
    ("nf", ""),
    ("ns", "a file at the root is a subsystem of its own (ours: one, `.`) [100/96/99.7 %]"),
    ("nd", "distinct directory *names* (last component): a package's main/ and test/ "
           "directories count once [98/94/99 %]"),
    ("entropy", "bits, as ours [100/98/99.7 %; off only beside binary files]"),
    ("ndev", "divided by nf; a file's history is kept under its path before each change, so "
             "it restarts after a move (ours follows renames) [100/99/100 %]"),
    ("age", "whole days since each file's last change, summed over the files / nf (new files "
            "0) [kafka 97 %]"),
    ("nuc", "each file's earlier changes summed over the files / nf, not distinct commits; "
            "histories as for ndev [99/78/97 %]"),
    ("exp", "counts merge commits too [99.5/98/99.7 %]"),
    ("rexp", "counts merge commits too"),
    ("sexp", "a fraction (< 1 in most rows) when the change spans several subsystems; alike "
             "when it spans one [kafka 99 %]"),
    ("fix", "the commit fixes a JIRA bug report (issue links), not message keywords"),
)  # fmt: skip
LOW_RHO = 0.9  # below this, a metric defined alike is flagged for a look


def check_extra(names: tuple[str, ...]) -> None:
    """Every name is a per-commit attribute of `CommitMetrics` and not already a feature.

    Raises:
        ValueError: naming the unknown names and what `CommitMetrics` has.
    """
    have = {f.name for f in fields(CommitMetrics)}
    have |= {n for n, v in vars(CommitMetrics).items() if isinstance(v, property)}
    unknown = [n for n in names if n not in have]
    if unknown:
        numeric = sorted(have - {"sha", "author", "authored_at", "committed_at", "message"})
        raise ValueError(
            f"--extra {', '.join(unknown)}: CommitMetrics has no such attribute (it has "
            f"{', '.join(n for n in numeric if n != 'files')})"
        )
    doubled = [n for n in names if n in FEATURES]
    if doubled:
        raise ValueError(
            f"--extra {', '.join(doubled)}: already among the model's features (data.FEATURES)"
        )


def metrics_frame(metrics: list[CommitMetrics], extra: tuple[str, ...] = ()) -> pd.DataFrame:
    """One row per commit, indexed by sha: the 14 metrics (warehouse names, `fix` as 0/1)
    and the `extra` attributes, as floats; and `files`, the paths it changed.

    Raises:
        ValueError: an extra attribute is not a number.
    """
    import pandas as pd

    rows = {}
    for m in metrics:
        row = {name: float(getattr(m, name)) for name in METRIC_NAMES}
        for name in extra:
            value = getattr(m, name)
            try:
                row[name] = float(value)
            except (TypeError, ValueError):
                raise ValueError(f"--extra {name}: {m.sha} has {value!r}, not a number") from None
        rows[m.sha] = row
    frame = pd.DataFrame.from_dict(rows, orient="index", columns=[*METRIC_NAMES, *extra])
    frame["files"] = pd.Series({m.sha: m.files for m in metrics})
    return frame


def join_labelled(ours: pd.DataFrame, theirs: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The labelled commits (`theirs`, indexed by commit id) our walk also found, in their
    order, and our rows for the same commits (same index)."""
    found = theirs[theirs.index.isin(ours.index)]
    return found, ours.loc[found.index]


def _converted(name: str, ours: pd.DataFrame) -> tuple[pd.Series, pd.Series] | None:
    """Our value in ApacheJIT's definition, and the rows it applies to; None where our output
    cannot be converted."""
    import pandas as pd

    every = pd.Series(True, index=ours.index)
    if name == "ns":
        names = [len({f.partition("/")[0] for f in fs}) for fs in ours["files"]]
        return pd.Series(names, index=ours.index, dtype=float), every
    if name == "nd":
        names = [len({directory(f).rpartition("/")[2] for f in fs}) for fs in ours["files"]]
        return pd.Series(names, index=ours.index, dtype=float), every
    if name == "sexp":
        return ours["sexp"], ours["ns"] == 1
    return None


def agreement(ours: pd.DataFrame, theirs: pd.DataFrame) -> list[dict[str, Any]]:
    """Per metric of `COMPARED` that `theirs` has: rows, Spearman's rho, median ratio
    (ours / theirs where both are above 0), share of equal values, the converted share
    (None where not converted), ApacheJIT's difference and whether to look (`flag`)."""
    import numpy as np

    table = []
    for name, difference in COMPARED:
        if name not in theirs.columns:
            continue
        x, y = ours[name].astype(float), theirs[name].astype(float)
        rho = x.rank().corr(y.rank())  # Spearman: Pearson on ranks; NaN when one is constant
        both = (x > 0) & (y > 0)
        converted = _converted(name, ours)
        if converted is not None:
            values, rows = converted
            converted = float(np.isclose(values[rows], y[rows], rtol=1e-6, atol=1e-6).mean())
        table.append(
            {
                "metric": name,
                "rows": len(x),
                "rho": float(rho),
                "median_ratio": float((x[both] / y[both]).median()) if both.any() else None,
                "equal": float(np.isclose(x, y, rtol=1e-6, atol=1e-6).mean()),
                "converted": converted,
                "difference": difference,
                "flag": not difference and not rho >= LOW_RHO,
            }
        )
    return table


def _print_agreement(project: str, table: list[dict[str, Any]], renames: dict[str, str]) -> None:
    print(f"# {project}: metric (ApacheJIT column) rows rho ratio equal converted | definition",
          flush=True)  # fmt: skip
    for r in table:
        column = renames.get(r["metric"], r["metric"])
        ratio = "-" if r["median_ratio"] is None else f"{r['median_ratio']:.2f}"
        converted = "-" if r["converted"] is None else f"{r['converted']:.0%}"
        verdict = f"differs: {r['difference']}" if r["difference"] else "alike"
        if r["flag"]:
            verdict += "; LOW AGREEMENT WITHOUT A DEFINITIONAL REASON: look at it"
        print(f"#   {r['metric']:8} ({column:5}) {r['rows']:4} {r['rho']:6.3f} {ratio:>6} "
              f"{r['equal']:5.0%} {converted:>5} | {verdict}", flush=True)  # fmt: skip


def roles(data: Path) -> dict[str, tuple[str, str]]:
    """Each ApacheJIT project's role in `ml_risk_projects`' protocol (development, held-out
    or not eligible) and, for one not eligible there, why."""
    skipped: list[str] = []
    found = {p.name: (p.role, "") for p in projects(data, skipped) if p.name not in KAMEI}
    for reason in skipped:
        name, _, why = reason.partition(": ")
        found.setdefault(name, ("not eligible", why))
    return found


def auc_error(auc: float, defects: int, clean: int) -> float:
    """Hanley and McNeil's (1982) standard error of an AUC from its class sizes: how far a
    few dozen test rows let one trust a difference."""
    q1, q2 = auc / (2 - auc), 2 * auc**2 / (1 + auc)
    spread = auc * (1 - auc) + (defects - 1) * (q1 - auc**2) + (clean - 1) * (q2 - auc**2)
    return math.sqrt(max(spread, 0.0) / (defects * clean))


def risk_aucs(
    pooled: RiskDataset, theirs: pd.DataFrame, ours: pd.DataFrame, extra: tuple[str, ...]
) -> dict[str, Any]:
    """Time split of `theirs` (ApacheJIT's loaded rows of one project), then the test AUC of
    lines added, of the model on ApacheJIT's metrics, on ours and on ours plus `extra`."""
    alone = replace(pooled, frame=theirs.drop(columns=[GROUP]), group_column=None)
    train, test = time_split(alone)
    y = test[LABEL].to_numpy()
    ours_train = ours.loc[train.index].assign(**{LABEL: train[LABEL]})
    ours_test = ours.loc[test.index]
    # name: (training rows, test rows, features); None = every metric of `FEATURES` present
    variants = {
        "apachejit_metrics": (train, test, None),
        "our_metrics": (ours_train, ours_test, FEATURES),
    }
    if extra:
        variants["our_metrics_plus_" + "_".join(extra)] = (
            ours_train, ours_test, (*FEATURES, *extra)
        )  # fmt: skip
    aucs = {"lines_added": roc_auc(y, ours_test["la"])}
    for name, (rows, scored, features) in variants.items():
        model = fit_risk_model(rows, features=features, group=None)
        aucs[name] = roc_auc(y, model.risk(scored))
    return {"aucs": aucs, "n_test": len(test), "defects": int(y.sum()), "n_train": len(train)}


def bench_project(
    project: str, path: Path, pooled: RiskDataset, role: str, extra: tuple[str, ...]
) -> None:
    name = project.removeprefix("apache/")
    theirs = pooled.frame[pooled.frame[GROUP] == project]
    with readable_repository(path, set(theirs.index)) as (repo, note):
        if note:
            print(f"# {project}: {note}", flush=True)
        started = time.perf_counter()

        def progress(count: int) -> None:
            print(f"# {project}: {count:,} commits walked "
                  f"({time.perf_counter() - started:.0f} s)", flush=True)  # fmt: skip

        walked = commit_metrics(repo, progress=progress)
        seconds = time.perf_counter() - started
    report(f"history_{name}_walk_seconds", seconds, f"s for {len(walked):,} commits")
    found, ours = join_labelled(metrics_frame(walked, extra), theirs)
    report(f"history_{name}_labelled_found", len(found), f"commits of {len(theirs):,} labelled")
    _print_agreement(project, agreement(ours, found), pooled.renames)
    try:
        r = risk_aucs(pooled, found, ours, extra)
    except ValueError as error:  # the split's or the model's own checks
        print(f"# {project}: no risk figures: {error}", flush=True)
        return
    la = r["aucs"]["lines_added"]
    rows = f"{r['n_test']} test rows, {r['defects']} defective; {r['n_train']} train; {role}"
    for variant, auc in r["aucs"].items():
        ratio = None if variant == "lines_added" else auc / la
        baseline = f"lines added {la:.3f}"
        report(f"history_{name}_auc_{variant}", auc, f"AUC ({rows})", ratio, baseline)
    clean = r["n_test"] - r["defects"]
    figures = ", ".join(
        f"{v.replace('_', ' ')} {auc:.3f} (±{auc_error(auc, r['defects'], clean):.3f})"
        for v, auc in r["aucs"].items()
    )
    print(f"# {project} ({role}): AUC (± standard error) {figures} on {rows.split(';')[0]}",
          flush=True)  # fmt: skip


def main(data: Path, repos: list[tuple[str, Path]], extra: tuple[str, ...]) -> None:
    # Every argument is checked before the first walk: a typo must not cost minutes.
    check_extra(extra)
    pooled = load_risk_csv(data / APACHEJIT, require_time=True)
    labelled = set(pooled.frame[GROUP])
    for project, path in repos:
        if project not in labelled:
            raise ValueError(f"{project} has no labelled commits in {pooled.source}; it has "
                             f"{', '.join(sorted(labelled))}")  # fmt: skip
        require_repository(path)
    known = roles(data)
    for project, path in repos:
        role, why = known.get(project.removeprefix("apache/"), ("not in ml_risk_projects", ""))
        print(f"# {project} ({role}{' in ml_risk_projects: ' + why if why else ''}): {path}",
              flush=True)  # fmt: skip
        bench_project(project, path, pooled, role, extra)


def _repo(text: str) -> tuple[str, Path]:
    project, sep, path = text.partition("=")
    if not sep or not project or not path:
        raise argparse.ArgumentTypeError(f"{text!r} is not PROJECT=PATH")
    return project, Path(path)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument(
        "--repo", type=_repo, action="append", required=True,
        help="PROJECT=PATH, e.g. apache/kafka=/path/to/kafka.git; repeat for more",
    )  # fmt: skip
    parser.add_argument(
        "--extra", default="", help="comma-separated CommitMetrics attributes to add as a variant"
    )
    arguments = parser.parse_args()
    extra = tuple(n.strip() for n in arguments.extra.split(",") if n.strip())
    try:
        main(arguments.data, arguments.repo, extra)
    except ValueError as error:
        parser.exit(2, f"ml_risk_history: error: {error}\n")
