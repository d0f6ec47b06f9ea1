"""Vulnerability history: per image (scan after scan), per service (the images it deployed),
per deployment (what was open in the image when it went out), and time to fix.

An image reference is matched to its scans as the security gate does (`policy.image_scan`):
by digest whatever the reference (a tag is resolved through `registry_images`, then the
registry when the caller passes a `lookup`), and only a tag nothing resolves by the artifact
name the scanner recorded. A deployment is
judged by the newest scan of its image at or before the deployment: findings first seen by
then and not fixed by then were open; a deployment with no earlier scan is `scanned=False`.
"""

from __future__ import annotations

import datetime as dt
from typing import TYPE_CHECKING, Any

from timbel_dagster.records.image_ref import parse_image
from timbel_dagster.records.trivy import SEVERITIES
from timbel_dagster.security.image_ref import DigestLookup, resolve_digest, resolve_many
from timbel_dagster.security.policy import image_findings
from timbel_dagster.warehouse.schema.models import Deployment as D
from timbel_dagster.warehouse.schema.security import ScanResult as S
from timbel_dagster.warehouse.schema.security import VulnerabilityFinding as F

if TYPE_CHECKING:
    from collections.abc import Iterable

    import pandas as pd
    from sqlalchemy.engine import Connection

_LEVELS = [s.lower() for s in SEVERITIES]
_TIMES = ("scanned_at", "started_at", "first_seen", "fixed_at")


def _frame(connection: Connection, query: Any) -> pd.DataFrame:
    """The query's rows; time columns as UTC nanoseconds even when empty (merges need it)."""
    import pandas as pd

    result = connection.execute(query)
    frame = pd.DataFrame(result.fetchall(), columns=list(result.keys()))
    for column in set(_TIMES) & set(frame.columns):
        frame[column] = pd.to_datetime(frame[column], utc=True).astype("datetime64[ns, UTC]")
    return frame


def _naive(times: pd.Series) -> Any:
    return times.dt.tz_localize(None).to_numpy(dtype="datetime64[ns]")


def _name(image: str) -> str:
    """`n:` and the reference's `registry/repository:tag` (as given when it does not parse)."""
    try:
        ref = parse_image(image)
    except ValueError:
        return f"n:{image}"
    return f"n:{ref.tagged or ref}"


def _match_keys(
    connection: Connection, images: Iterable[str], lookup: DigestLookup | None
) -> dict[str, str]:
    """Per image reference, how its scans are found: `d:digest` once resolved, else `n:name`."""
    return {
        image: f"d:{found.digest}" if found and found.digest else _name(image)
        for image, found in resolve_many(connection, images, lookup).items()
    }


def _scans(connection: Connection) -> pd.DataFrame:
    """Every successful scan, once per way a reference can name it (`match`: d:digest or
    n:name), oldest first."""
    import pandas as pd
    from sqlalchemy import select

    scans = _frame(
        connection,
        select(S.artifact_name, S.artifact_digest, S.artifact_key, S.scanned_at).where(
            S.status != "failed"
        ),
    )
    ways = [
        scans.assign(match=scans["artifact_name"].map(_name)),
        scans.dropna(subset=["artifact_digest"]).assign(
            match=lambda f: "d:" + f["artifact_digest"]
        ),
        scans.assign(match="d:" + scans["artifact_key"]),
    ]
    both = pd.concat(ways, ignore_index=True).drop_duplicates(["match", "scanned_at"])
    both["match"] = both["match"].astype(object)  # as the deployments' keys (merge_asof)
    return both.sort_values("scanned_at", kind="stable").reset_index(drop=True)


def _findings(connection: Connection, keys: list[str]) -> pd.DataFrame:
    from sqlalchemy import select

    columns = (F.artifact_key, F.severity, F.first_seen, F.fixed_at)
    return _frame(connection, select(*columns).where(F.artifact_key.in_(keys or [""])))


def _open_at(findings: pd.DataFrame, keys: pd.Series, times: pd.Series) -> pd.DataFrame:
    """Per (artifact key, time): findings of each severity first seen at or before the time
    and not fixed by then; one column per severity (lower case)."""
    import numpy as np
    import pandas as pd

    counts = pd.DataFrame(0, index=keys.index, columns=_LEVELS)
    for (key, severity), group in findings.groupby(["artifact_key", "severity"]):
        rows = keys.index[keys == key]
        if rows.empty:
            continue
        at = _naive(times.loc[rows])
        seen = np.sort(_naive(group["first_seen"]))
        fixed = np.sort(_naive(group["fixed_at"].dropna()))
        opened = np.searchsorted(seen, at, side="right")
        closed = np.searchsorted(fixed, at, side="right")
        counts.loc[rows, severity.lower()] = opened - closed
    return counts


def image_history(
    connection: Connection, image_ref: str, lookup: DigestLookup | None = None
) -> pd.DataFrame:
    """One row per successful scan of the image, oldest first: `scanned_at`, `artifact_key`,
    the findings open after it per severity (`critical` ... `unknown`), and how many it
    reported first (`new`) and no longer reported (`fixed`).

    Raises:
        ValueError: `image_ref` is not an image reference.
    """
    found = resolve_digest(connection, image_ref, lookup)
    key = f"d:{found.digest}" if found.digest else _name(image_ref)
    scans = _scans(connection)
    scans = scans[scans["match"] == key].drop(columns="match")
    scans = scans.drop_duplicates(["artifact_key", "scanned_at"]).reset_index(drop=True)
    findings = _findings(connection, sorted(set(scans["artifact_key"])))
    opened = _open_at(findings, scans["artifact_key"], scans["scanned_at"])
    first = findings.groupby(["artifact_key", "first_seen"]).size()
    fixed = findings.dropna(subset=["fixed_at"]).groupby(["artifact_key", "fixed_at"]).size()
    pairs = list(zip(scans["artifact_key"], scans["scanned_at"], strict=True))
    return scans.join(opened).assign(
        new=[int(first.get(p, 0)) for p in pairs], fixed=[int(fixed.get(p, 0)) for p in pairs]
    )


def deployment_exposure(
    connection: Connection,
    service: str | None = None,
    environment: str | None = None,
    since: dt.datetime | None = None,
    lookup: DigestLookup | None = None,
) -> pd.DataFrame:
    """One row per deployment with an image, oldest first: `service`, `environment`,
    `started_at`, `image`, `status`, `scanned` (a scan existed by then) and the findings
    open in the image at that moment per severity. A tag is judged by the digest it points
    at now (`registry_images`, then `lookup`)."""
    import pandas as pd
    from sqlalchemy import select

    query = select(D.external_id, D.service, D.environment, D.started_at, D.image, D.status)
    query = query.where(D.image.is_not(None))
    for column, value in ((D.service, service), (D.environment, environment)):
        if value is not None:
            query = query.where(column == value)
    if since is not None:
        query = query.where(D.started_at >= since)
    deployments = _frame(connection, query.order_by(D.started_at, D.external_id))
    keys = _match_keys(connection, deployments["image"], lookup)
    deployments["match"] = deployments["image"].map(keys).astype(object)
    deployments = pd.merge_asof(
        deployments.sort_values("started_at", kind="stable"),
        _scans(connection)[["match", "artifact_key", "scanned_at"]],
        left_on="started_at",
        right_on="scanned_at",
        by="match",
        direction="backward",
    ).reset_index(drop=True)
    keys = sorted(set(deployments["artifact_key"].dropna()))
    opened = _open_at(_findings(connection, keys), deployments["artifact_key"],
                      deployments["started_at"])  # fmt: skip
    deployments["scanned"] = deployments["artifact_key"].notna()
    return deployments.drop(columns=["match", "scanned_at"]).join(opened)


def service_history(
    connection: Connection, service: str | None = None, lookup: DigestLookup | None = None
) -> pd.DataFrame:
    """Per service and image it deployed: `deployments`, `environments`, `first_deployed`,
    `last_deployed`, the findings open at its latest deployment per severity, and
    `open_now_critical` / `open_now_high` from the image's newest scan (None: never scanned)."""
    import pandas as pd

    exposure = deployment_exposure(connection, service, lookup=lookup)
    if exposure.empty:
        return exposure
    grouped = exposure.groupby(["service", "image"], sort=False)
    summary = grouped.agg(
        deployments=("external_id", "size"),
        environments=("environment", lambda e: ",".join(sorted(set(e)))),
        first_deployed=("started_at", "min"),
        last_deployed=("started_at", "max"),
    )
    latest = grouped[_LEVELS].last()
    summary = summary.join(latest).reset_index().sort_values(["service", "last_deployed"])
    now: dict[str, list[Any]] = {"open_now_critical": [], "open_now_high": []}
    resolved = resolve_many(connection, summary["image"], lookup)
    for image in summary["image"]:
        found = resolved[image]
        findings = image_findings(connection, found) if found else None
        for level, column in (("CRITICAL", "open_now_critical"), ("HIGH", "open_now_high")):
            now[column].append(
                None if findings is None else sum(f["severity"] == level for f in findings)
            )
    counts = {column: pd.array(values, dtype="Int64") for column, values in now.items()}
    return summary.assign(**counts).reset_index(drop=True)


def time_to_fix(
    connection: Connection, since: dt.datetime | None = None, artifact: str | None = None
) -> pd.DataFrame:
    """Per severity (worst first): findings `fixed` (since `since`, by `fixed_at`) and still
    `open`, and the `median_days` and `p90_days` from first seen to fixed."""
    import pandas as pd
    from sqlalchemy import select

    query = select(F.severity, F.first_seen, F.fixed_at)
    if artifact is not None:
        query = query.where(F.artifact_name == artifact)
    found = _frame(connection, query)
    fixed = found.dropna(subset=["fixed_at"])
    if since is not None:
        fixed = fixed[fixed["fixed_at"] >= since]
    days = (fixed["fixed_at"] - fixed["first_seen"]).dt.total_seconds() / 86_400
    rows = []
    for severity in SEVERITIES:
        taken = days[fixed["severity"] == severity]
        rows.append(
            {
                "severity": severity,
                "fixed": len(taken),
                "open": int(((found["severity"] == severity) & found["fixed_at"].isna()).sum()),
                "median_days": float(taken.median()) if len(taken) else None,
                "p90_days": float(taken.quantile(0.9)) if len(taken) else None,
            }
        )
    return pd.DataFrame(rows)


def current_images(
    connection: Connection, environment: str = "prod", at: dt.datetime | None = None
) -> list[tuple[str, str]]:
    """(service, image) of each service's latest successful deployment to `environment`
    (started by `at`, when given)."""
    from sqlalchemy import func, select

    newest_first = (D.started_at.desc(), D.external_id.desc())
    query = select(
        D.service,
        D.image,
        func.row_number().over(partition_by=D.service, order_by=newest_first).label("n"),
    ).where(D.environment == environment, D.status == "success", D.image.is_not(None))
    if at is not None:
        query = query.where(D.started_at <= at)
    ranked = query.subquery()
    query = select(ranked.c.service, ranked.c.image).where(ranked.c.n == 1)
    return [(s, i) for s, i in connection.execute(query.order_by(ranked.c.service))]


def open_by_deployed_image(
    connection: Connection,
    environment: str = "prod",
    severity: str = "CRITICAL",
    first_seen_after: dt.datetime | None = None,
    at: dt.datetime | None = None,
) -> list[tuple[str, str, int]]:
    """(service, image, open findings of `severity`) for each image deployed to `environment`
    (at `at`; now by default) that was scanned, optionally counting only findings first seen
    after a time."""

    found = []
    images = current_images(connection, environment, at)
    resolved = resolve_many(connection, [image for _, image in images])
    for service, image in images:
        ref = resolved[image]
        findings = image_findings(connection, ref) if ref else None
        if findings is None:
            continue
        count = sum(
            f["severity"] == severity
            and (first_seen_after is None or f["first_seen"] > first_seen_after)
            for f in findings
        )
        found.append((service, image, count))
    return found
