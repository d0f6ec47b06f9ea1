"""Ratings, reviews and the marketplace ranking (Bayesian stars plus recent adoption)."""

from __future__ import annotations

import datetime as dt
import json
import math
import uuid
from typing import Any

import pytest
from click.testing import CliRunner
from sqlalchemy import insert, select

from tests.pipeline_templates.store_helpers import (
    CI,
    CI_SCHEMA,
    counts,
    events,
    with_people,
)
from timbel_dagster.cli.app import main
from timbel_dagster.pipeline_templates import access, marketplace, store
from timbel_dagster.warehouse.schema.templates import PipelineTemplate, PipelineTemplateUsage

NOW = dt.datetime(2026, 11, 20, 12, 0, tzinfo=dt.UTC)


@pytest.fixture
def engine(warehouse_url: str) -> Any:
    return with_people(warehouse_url)


def _publish(engine: Any, name: str, actor: str = "alice", visibility: str = "public") -> None:
    store.publish(engine, actor, name, "gitlab-ci", CI, parameters=CI_SCHEMA,
                  visibility=visibility)  # fmt: skip


def test_ratings_are_validated_and_rating_again_replaces(engine) -> None:
    _publish(engine, "py-ci")
    _publish(engine, "secret", actor="carol", visibility="private")
    for stars in (0, 6, 3.5, True, "4"):
        with pytest.raises(ValueError, match="stars must be a whole number from 1 to 5"):
            marketplace.rate(engine, "bob", "py-ci", stars)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="alice owns template 'py-ci' and cannot rate it"):
        marketplace.rate(engine, "alice", "py-ci", 5)
    with pytest.raises(LookupError, match="no pipeline template 'secret'"):
        marketplace.rate(engine, "bob", "secret", 5)
    with pytest.raises(LookupError, match="user 'mallory' is not in the users table"):
        marketplace.rate(engine, "mallory", "py-ci", 5)
    with pytest.raises(ValueError, match="at most 5000"):
        marketplace.rate(engine, "bob", "py-ci", 5, "x" * 5001)
    assert counts(engine)["pipeline_template_ratings"] == 0

    first = marketplace.rate(engine, "bob", "py-ci", 2, "meh")
    assert first["previous_stars"] is None
    marketplace.rate(engine, "carol", "py-ci", 3, "fine")
    again = marketplace.rate(engine, "bob", "py-ci", 4, "better after v2")
    assert again["previous_stars"] == 2
    assert counts(engine)["pipeline_template_ratings"] == 2
    found = marketplace.reviews(engine, "erin", "py-ci")
    assert [(r["user"], r["stars"], r["review"]) for r in found] == [
        ("bob", 4, "better after v2"), ("carol", 3, "fine"),
    ]  # fmt: skip
    assert [e["details"] for e in events(engine, "template.rate")] == [
        {"stars": 2, "previous_stars": None},
        {"stars": 3, "previous_stars": None},
        {"stars": 4, "previous_stars": 2},
    ]
    with pytest.raises(LookupError, match="no pipeline template 'secret'"):
        marketplace.reviews(engine, "erin", "secret")


def _use(engine: Any, name: str, target: str, days_ago: float, kind: str = "repository") -> None:
    with engine.begin() as connection:
        template_id = connection.execute(
            select(PipelineTemplate.id).where(PipelineTemplate.name == name)
        ).scalar_one()
        connection.execute(
            insert(PipelineTemplateUsage).values(
                id=uuid.uuid4(), template_id=template_id, version=1, target_kind=kind,
                target=target, applied_by="bob", applied_at=NOW - dt.timedelta(days=days_ago),
            )
        )  # fmt: skip


@pytest.fixture
def rated(engine) -> Any:
    """Five public templates of alice, carol's private `delta` (shared with bob), ratings
    and applications (see the hand computation in the ranking test)."""
    for name in ("alpha", "beta", "gamma", "eta", "zeta"):
        _publish(engine, name)
    _publish(engine, "delta", actor="carol", visibility="private")
    access.share(engine, "carol", "delta", "bob")
    marketplace.rate(engine, "bob", "alpha", 5)
    for user, stars in (("bob", 4), ("carol", 4), ("dave", 4), ("erin", 5)):
        marketplace.rate(engine, user, "beta", stars)
    marketplace.rate(engine, "bob", "delta", 1)
    marketplace.rate(engine, "dave", "delta", 1)
    _use(engine, "gamma", "/src/r1", 1)
    _use(engine, "gamma", "/src/r1", 2)  # the same target again: counted once
    _use(engine, "gamma", "/src/r2", 10)
    _use(engine, "gamma", "team/j1", 89, kind="jenkins")
    _use(engine, "gamma", "/src/r3", 91)  # outside the 90 days
    _use(engine, "beta", "/src/r1", 5)
    _use(engine, "delta", "/src/r9", 1)
    return engine


def test_ranking_on_a_hand_computed_example(rated) -> None:
    # All 7 ratings (delta's count too, though erin cannot see it): m = 24 / 7.
    m = 24 / 7
    expected = [
        # name, mean, n, bayesian = (5 m + sum) / (5 + n), distinct targets in 90 days
        ("beta", 4.25, 4, (5 * m + 17) / 9, 1),  # = 239/63
        ("gamma", None, 0, m, 3),
        ("alpha", 5.0, 1, (5 * m + 5) / 6, 0),  # = 155/42
        ("eta", None, 0, m, 0),  # ties with zeta: by name
        ("zeta", None, 0, m, 0),
    ]
    rows = marketplace.ranking(rated, "erin", now=NOW)
    assert [r["name"] for r in rows] == [e[0] for e in expected]
    for row, (name, mean, n, bayesian, uses) in zip(rows, expected, strict=True):
        assert (row["rating_mean"], row["n_ratings"], row["uses_90d"]) == (mean, n, uses), name
        assert row["bayesian"] == pytest.approx(bayesian, abs=1e-12)
        assert row["score"] == pytest.approx(bayesian + 0.5 * math.log1p(uses), abs=1e-12)
    assert rows[0]["bayesian"] == pytest.approx(239 / 63)
    assert rows[0]["score"] == pytest.approx(4.140225, abs=1e-6)
    assert rows[1]["score"] == pytest.approx(4.121718, abs=1e-6)
    assert rows[2]["score"] == pytest.approx(155 / 42) == pytest.approx(3.690476, abs=1e-6)

    # An admin also sees the private template; bob sees it through its share.
    admin = marketplace.ranking(rated, "dave", now=NOW)
    assert admin[-1]["name"] == "delta"
    assert admin[-1]["score"] == pytest.approx(134 / 49 + 0.5 * math.log(2))
    assert "delta" in [r["name"] for r in marketplace.ranking(rated, "bob", now=NOW)]
    assert [r["name"] for r in marketplace.ranking(rated, "erin", limit=2, now=NOW)] == [
        "beta", "gamma",
    ]  # fmt: skip
    assert marketplace.ranking(rated, "erin", kind="jenkinsfile", now=NOW) == []
    # A heavier prior flattens the ratings: gamma's adoption now beats beta's stars.
    heavy = marketplace.ranking(rated, "erin", prior_weight=50, now=NOW)
    assert [r["name"] for r in heavy[:2]] == ["gamma", "beta"]
    with pytest.raises(ValueError, match="limit must be 1 or more"):
        marketplace.ranking(rated, "erin", limit=0)


def test_ranking_without_any_rating_uses_the_middle_of_the_scale(engine) -> None:
    _publish(engine, "alpha")
    (row,) = marketplace.ranking(engine, "nobody")
    assert (row["bayesian"], row["score"], row["rating_mean"]) == (3.0, 3.0, None)


def test_cli_rate_reviews_marketplace(
    rated, warehouse_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TIMBEL_DATABASE_URL", warehouse_url)
    monkeypatch.setenv("TIMBEL_USER", "frank")
    runner = CliRunner()
    made = runner.invoke(main, ["template", "rate", "alpha", "2", "--review", "too slow"])
    assert made.exit_code == 0, made.output
    assert made.stdout == "alpha: rated 2/5 by frank\n"
    bad = runner.invoke(main, ["template", "rate", "alpha", "9"])
    assert (bad.exit_code, bad.stderr) == (
        2, "timbel: error: stars must be a whole number from 1 to 5, not 9\n",
    )  # fmt: skip
    listed = runner.invoke(main, ["template", "reviews", "alpha"])
    assert listed.stdout.splitlines()[0].startswith("**... frank")
    # (the usage rows are dated around NOW; the command counts 90 days back from today)
    ranked = json.loads(runner.invoke(main, ["template", "marketplace", "--json"]).stdout)
    assert {r["name"] for r in ranked} == {"alpha", "beta", "gamma", "eta", "zeta"}
    assert next(r for r in ranked if r["name"] == "alpha")["n_ratings"] == 2
    table = runner.invoke(main, ["template", "marketplace", "--limit", "1"]).stdout.splitlines()
    assert table[0].split() == ["TEMPLATE", "KIND", "VISIBILITY", "STARS", "N", "BAYES",
                                "USES", "SCORE"]  # fmt: skip
    assert len(table) == 2 and table[1].split()[0] == ranked[0]["name"]
