"""benchmarks/ml_risk_history.py: joining our metrics to labelled commits, the agreement
table, the risk variants, and reading a repository that lacks blobs (a partial clone)."""

from __future__ import annotations

import os
import subprocess
from math import log2
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from benchmarks.history_repos import readable_repository
from benchmarks.ml_risk_history import (
    agreement,
    auc_error,
    check_extra,
    join_labelled,
    metrics_frame,
    risk_aucs,
)
from timbel_dagster.ml.changes.metrics import commit_metrics
from timbel_dagster.ml.risk.data import GROUP, to_risk_frame


def _git(repo: Path, *args: str, day: int = 0) -> str:
    env = {
        **os.environ,
        "GIT_CONFIG_GLOBAL": os.devnull,
        "GIT_CONFIG_NOSYSTEM": "1",
        "GIT_AUTHOR_NAME": "Alice",
        "GIT_AUTHOR_EMAIL": "alice@example.org",
        "GIT_COMMITTER_NAME": "Alice",
        "GIT_COMMITTER_EMAIL": "alice@example.org",
        "GIT_AUTHOR_DATE": f"@{1704067200 + day * 86400} +0000",
        "GIT_COMMITTER_DATE": f"@{1704067200 + day * 86400} +0000",
    }
    return subprocess.run(
        ["git", *args], cwd=repo, env=env, check=True, capture_output=True, text=True
    ).stdout


def _commit(repo: Path, files: dict[str, str], day: int) -> str:
    for path, text in files.items():
        (repo / path).parent.mkdir(parents=True, exist_ok=True)
        (repo / path).write_text(text)
    _git(repo, "add", "-A", day=day)
    _git(repo, "commit", "-q", "-m", f"change {day}", day=day)
    return _git(repo, "rev-parse", "HEAD").strip()


@pytest.fixture(scope="module")
def history(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[str]]:
    """Three commits; the second spans two subsystems and a main/test pair of directories."""
    repo = tmp_path_factory.mktemp("history")
    _git(repo, "init", "-q", "-b", "main")
    second = {"core/src/main/a/A.java": "1\n2\n3\n", "core/src/test/a/T.java": "t\n"}
    shas = [
        _commit(repo, {"core/src/main/a/A.java": "1\n2\n"}, 0),
        _commit(repo, {**second, "docs/x.md": "x\ny\nz\n"}, 1),
        _commit(repo, {"core/src/main/a/A.java": "1\n"}, 2),
    ]
    return repo, shas


def test_join_keeps_the_labelled_commits_found_in_their_order(history) -> None:
    repo, shas = history
    ours = metrics_frame(commit_metrics(repo))
    theirs = pd.DataFrame({"la": [1.0, 2.0, 9.0]}, index=[shas[2], "f" * 40, shas[0]])
    found, mine = join_labelled(ours, theirs)
    assert list(found.index) == list(mine.index) == [shas[2], shas[0]]
    assert mine["la"].tolist() == [0.0, 2.0]


def test_agreement_converts_where_it_can_and_flags_what_is_defined_alike(history) -> None:
    repo, shas = history
    ours = metrics_frame(commit_metrics(repo)).loc[shas]
    nf = ours["nf"]
    theirs = pd.DataFrame(
        {
            "la": ours["la"],
            "nf": nf,
            "ld": [2.0, 1.0, 0.0],  # defined alike yet ranked against ours: flagged
            "ns": [1.0, 2.0, 1.0],
            "entropy": ours["entropy"] + [0.0, 0.1, 0.0],  # off beside a binary file
            "nd": [1.0, 2.0, 1.0],  # core/src/main/a and core/src/test/a are one name "a"
            "sexp": [0.0, 0.25, 2.0],  # a fraction where the change spans two subsystems
        },
        index=shas,
    )
    table = {row["metric"]: row for row in agreement(ours, theirs)}
    assert list(table) == ["la", "ld", "nf", "ns", "nd", "entropy", "sexp"]  # COMPARED's order
    assert table["la"]["equal"] == 1.0 and table["la"]["rho"] == pytest.approx(1.0)
    assert not table["la"]["flag"] and table["la"]["converted"] is None
    assert table["ld"]["flag"] and table["ld"]["rho"] < 0
    assert table["ns"]["equal"] == table["ns"]["converted"] == 1.0
    second = ours.loc[shas[1]]
    assert second["entropy"] == pytest.approx(
        -(2 * 0.2 * log2(0.2) + 0.6 * log2(0.6))  # bits: lines 1, 1, 3 over 3 files
    )
    assert table["entropy"]["equal"] == pytest.approx(2 / 3)
    assert table["entropy"]["converted"] is None
    assert table["nd"]["equal"] == pytest.approx(2 / 3) and table["nd"]["converted"] == 1.0
    assert table["sexp"]["converted"] == 1.0  # single-subsystem commits only
    assert table["la"]["median_ratio"] == pytest.approx(1.0)


def test_auc_error_is_hanley_and_mcneils() -> None:
    # AUC 0.5 on 50 + 50 rows: Q1 = Q2 = 1/3, so the variance is (1/4 + 98/12) / 2500.
    assert auc_error(0.5, 50, 50) == pytest.approx(((0.25 + 98 / 12) / 2500) ** 0.5)
    assert auc_error(0.8, 2, 63) > 3 * auc_error(0.8, 20, 63)  # few defects: wide


def test_extra_metrics_must_exist_and_be_new() -> None:
    check_extra(())
    check_extra(("prior_fixes", "recent_churn"))  # the touched files' history
    with pytest.raises(ValueError, match=r"past_bugs: CommitMetrics has no such attribute"):
        check_extra(("past_bugs",))
    with pytest.raises(ValueError, match=r"lt: already among the model's features"):
        check_extra(("lt",))


def test_risk_variants_rest_on_the_same_test_rows() -> None:
    """The extra variant goes through `fit_risk_model(features=...)`, the product's own
    way of choosing metrics; all AUCs are on the newest 20 % of the same rows."""
    rng = np.random.default_rng(0)
    n = 150
    la = rng.integers(1, 500, n)
    label = (rng.random(n) < la / 600).astype(int)
    raw = pd.DataFrame(
        {
            "commit_id": [f"{i:040x}" for i in range(n)],
            "project": "apache/demo",
            "buggy": label.astype(bool),
            "author_date": 1_500_000_000 + np.arange(n) * 3600,
            **{c: rng.integers(1, 20, n) for c in ("ld", "nf", "nd", "ns", "ndev", "nuc")},
            "la": la,
            "ent": rng.random(n),
            "age": rng.random(n) * 100,
            "aexp": rng.integers(0, 300, n),
            "arexp": rng.random(n) * 50,
            "asexp": rng.integers(0, 100, n),
            "fix": rng.random(n) < 0.2,
        }
    )
    pooled = to_risk_frame(raw, require_time=True)
    theirs = pooled.frame[pooled.frame[GROUP] == "apache/demo"]
    ours = theirs.drop(columns=["label", "time", GROUP]).assign(lt=100.0, helpful=label * 5.0)
    r = risk_aucs(pooled, theirs, ours, ("helpful",))
    assert (r["n_train"], r["n_test"]) == (120, 30)
    assert r["defects"] == int(label[120:].sum())
    assert set(r["aucs"]) == {
        "lines_added", "apachejit_metrics", "our_metrics", "our_metrics_plus_helpful"
    }  # fmt: skip
    assert r["aucs"]["our_metrics_plus_helpful"] > r["aucs"]["our_metrics"]


def test_a_partial_clone_is_read_through_an_overlay(tmp_path: Path) -> None:
    """Like the shared mirrors: a blob-size-filtered clone whose remote is gone."""
    source = tmp_path / "source"
    source.mkdir()
    _git(source, "init", "-q", "-b", "main")
    _commit(source, {"big.txt": "".join(f"{i}\n" for i in range(3000)), "small.txt": "a\n"}, 0)
    second = _commit(source, {"small.txt": "a\nb\n", "big.txt": "changed\n"}, 1)
    _git(source, "config", "uploadpack.allowFilter", "true")
    clone = tmp_path / "clone.git"
    _git(tmp_path, "clone", "-q", "--bare", "--no-local", "--filter=blob:limit=1k",
         source.resolve().as_uri(), str(clone))  # fmt: skip
    _git(clone, "config", "--remove-section", "remote.origin")
    before = sorted(p.relative_to(clone) for p in clone.rglob("*"))
    with pytest.raises(ValueError, match="unable to read"):
        commit_metrics(clone)
    with readable_repository(clone, {second}) as (repo, note):
        walked = commit_metrics(repo)
    assert note.startswith("1 blobs absent from") and note.endswith("2 commits, 1 of them labelled")
    assert [(m.nf, m.la, m.ld) for m in walked] == [(2, 1, 0), (2, 1, 0)]  # big.txt: 0 lines
    assert not repo.exists()  # the overlay is gone
    assert sorted(p.relative_to(clone) for p in clone.rglob("*")) == before  # only read
    with readable_repository(source, set()) as (same, note):
        assert (same, note) == (source, "")
