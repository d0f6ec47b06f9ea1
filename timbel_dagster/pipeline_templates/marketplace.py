"""The template marketplace: ratings, reviews and a ranking of the templates a user can see.

Ranking. A template's star mean alone over-rewards a single 5-star vote, so the rating part
is a Bayesian average that starts every template at the mean of all ratings and lets its own
votes pull it away as they accumulate:

    bayesian = (C * m + sum of its stars) / (C + n)

with `m` the mean of every rating of every template (3.0, the middle of the scale, while
nobody has rated anything) and `C` = `PRIOR_WEIGHT` (5): a template's own mean counts as
much as the prior once it has 5 ratings. Adoption adds

    usage = USAGE_WEIGHT * log1p(distinct targets it was applied to in the last 90 days)

(`USAGE_WEIGHT` 0.5: about 6.4 targets are worth one star; log1p so that the 100th
repository adds far less than the 2nd). `score = bayesian + usage`, highest first, ties by
name.
"""

from __future__ import annotations

import datetime as dt
import math
import uuid
from typing import TYPE_CHECKING, Any

from timbel_dagster.pipeline_templates import access, records, state
from timbel_dagster.warehouse.audit.chain import append_event
from timbel_dagster.warehouse.schema.templates import PipelineTemplateRating as R
from timbel_dagster.warehouse.schema.templates import PipelineTemplateUsage as U

if TYPE_CHECKING:
    from sqlalchemy.engine import Connection, Engine

PRIOR_WEIGHT = 5.0
USAGE_WEIGHT = 0.5
USAGE_WINDOW_DAYS = 90
EMPTY_PRIOR = 3.0  # the prior mean while there are no ratings at all
MAX_REVIEW = 5000


def bayesian_average(stars_sum: float, n: int, prior_mean: float, prior_weight: float) -> float:
    """`(C * m + sum) / (C + n)`: the prior mean pulled towards the template's own votes."""
    return (prior_weight * prior_mean + stars_sum) / (prior_weight + n)


def rate(engine: Engine, actor: str, name: str, stars: int, review: str = "") -> dict[str, Any]:
    """Rate a template 1-5 stars with an optional review; rating again replaces the rating.

    Raises:
        ValueError: stars outside 1..5, or rating one's own template.
        LookupError: the actor is unknown, or cannot see the template.
        TemplateStateError: the template is retired (audited `template.rate.refused`).
    """
    if isinstance(stars, bool) or not isinstance(stars, int) or not 1 <= stars <= 5:
        raise ValueError(f"stars must be a whole number from 1 to 5, not {stars!r}")
    if len(review) > MAX_REVIEW:
        raise ValueError(f"the review has {len(review)} characters; at most {MAX_REVIEW}")

    def change() -> dict[str, Any]:
        from sqlalchemy import insert, select, update

        with engine.begin() as connection:
            user = access.viewer(connection, actor, known=True)
            template = access.visible(connection, user, name)
            state.refuse_retired(template, "rate")
            if template["owner"] == user.name:
                raise ValueError(f"{user.name} owns template {name!r} and cannot rate it")
            where = (R.template_id == template["id"], R.user == user.name)
            previous = connection.execute(select(R.stars).where(*where)).scalar_one_or_none()
            values = {"stars": stars, "review": review, "created_at": dt.datetime.now(dt.UTC)}
            if previous is None:
                connection.execute(
                    insert(R).values(
                        id=uuid.uuid4(), template_id=template["id"], user=user.name, **values
                    )
                )
            else:
                connection.execute(update(R).where(*where).values(**values))
            append_event(
                connection,
                actor=user.name,
                action="template.rate",
                target=f"template {name}",
                details={"stars": stars, "previous_stars": previous},
            )
            return {
                "name": name,
                "user": user.name,
                "stars": stars,
                "review": review,
                "previous_stars": previous,
            }

    return access.guarded(engine, actor, "template.rate", f"template {name}", change)


def reviews(bind: Engine | Connection, viewer: str, name: str) -> list[dict[str, Any]]:
    """The ratings of a template the viewer can see, newest first."""
    from sqlalchemy import select

    with records.reading(bind) as connection:
        template = access.visible(connection, access.viewer(connection, viewer), name)
        query = (
            select(R.user, R.stars, R.review, R.created_at)
            .where(R.template_id == template["id"])
            .order_by(R.created_at.desc(), R.user)
        )
        return [dict(r) for r in connection.execute(query).mappings()]


def ranking(
    bind: Engine | Connection,
    viewer: str,
    kind: str | None = None,
    limit: int = 20,
    *,
    prior_weight: float = PRIOR_WEIGHT,
    usage_weight: float = USAGE_WEIGHT,
    window_days: int = USAGE_WINDOW_DAYS,
    now: dt.datetime | None = None,
    include_retired: bool = False,
) -> list[dict[str, Any]]:
    """The templates `viewer` can see, best first (see the module docstring for the score);
    retired ones only with `include_retired`.

    Returns:
        [{"name", "kind", "visibility", "owner", "rating_mean", "n_ratings", "bayesian",
          "uses_90d", "score", "retired_at"}], at most `limit`; `rating_mean` is None without
        ratings, `retired_at` None while the template is in use.
    """
    from sqlalchemy import func, select

    if limit < 1:
        raise ValueError(f"limit must be 1 or more, not {limit}")
    since = (now or dt.datetime.now(dt.UTC)) - dt.timedelta(days=window_days)
    with records.reading(bind) as connection:
        user = access.viewer(connection, viewer)
        shown = [
            t
            for t in access.all_templates(connection)
            if access.can_see(user, t)
            and (kind is None or t["kind"] == kind)
            and (include_retired or t["retired_at"] is None)
        ]
        total, count = connection.execute(select(func.sum(R.stars), func.count())).one()
        stars = {
            template_id: (float(summed), int(n))
            for template_id, summed, n in connection.execute(
                select(R.template_id, func.sum(R.stars), func.count()).group_by(R.template_id)
            )
        }
        targets = connection.execute(
            select(U.template_id, U.target_kind, U.target).distinct().where(U.applied_at >= since)
        ).all()
    prior_mean = float(total) / count if count else EMPTY_PRIOR
    uses: dict[Any, int] = {}
    for template_id, _kind, _target in targets:
        uses[template_id] = uses.get(template_id, 0) + 1
    rows = []
    for template in shown:
        summed, n = stars.get(template["id"], (0.0, 0))
        bayesian = bayesian_average(summed, n, prior_mean, prior_weight)
        used = uses.get(template["id"], 0)
        rows.append(
            {
                "name": template["name"],
                "kind": template["kind"],
                "visibility": template["visibility"],
                "owner": template["owner"],
                "rating_mean": summed / n if n else None,
                "n_ratings": n,
                "bayesian": bayesian,
                "uses_90d": used,
                "score": bayesian + usage_weight * math.log1p(used),
                "retired_at": template["retired_at"],
            }
        )
    # Rounded for the order only: equal scores computed along different paths must tie.
    rows.sort(key=lambda r: (-round(r["score"], 9), r["name"]))
    return rows[:limit]
