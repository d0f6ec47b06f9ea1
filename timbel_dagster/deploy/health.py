"""Health of freshly deployed services, the checks that trigger automatic rollback.

TIMBEL_HEALTH_FILE:

```yaml
services:
  shop-api:
    error_rate: sum(rate(http_requests_total{service="shop-api",cluster="$cluster",
      code=~"5.."}[5m])) / sum(rate(http_requests_total{service="shop-api",
      cluster="$cluster"}[5m]))
    error_rate_max: 0.05
    latency: histogram_quantile(0.99, sum by (le) (rate(
      http_request_duration_seconds_bucket{service="shop-api",cluster="$cluster"}[5m])))
    latency_max_seconds: 1.5
    threshold: 3          # consecutive breached checks before rolling back
    interval: 60s         # between checks: a breach must last threshold x interval
    watch: 30m            # how long after a deployment it is watched
    dry_run: false        # true: record what would be rolled back, change nothing
```
Besides the PromQL, every check looks at the rollout itself: a Deployment whose rollout
failed or whose pods crash-loop is a breach.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from timbel_dagster.notify.rules import parse_duration
from timbel_dagster.safe_yaml import load_yaml


class HealthFileError(ValueError):
    """TIMBEL_HEALTH_FILE is wrong; the message names the file and the service."""


@dataclass(frozen=True)
class HealthPolicy:
    service: str
    error_rate: str | None = None
    error_rate_max: float | None = None
    latency: str | None = None
    latency_max_seconds: float | None = None
    threshold: int = 3
    interval: dt.timedelta = dt.timedelta(minutes=1)
    watch: dt.timedelta = dt.timedelta(minutes=30)
    dry_run: bool = False


def load_policies(path: Path) -> dict[str, HealthPolicy]:
    import yaml

    try:
        data = load_yaml(path.read_text())
    except OSError as error:
        raise HealthFileError(f"TIMBEL_HEALTH_FILE: cannot read {path}: {error.strerror}") from None
    except yaml.YAMLError as error:
        raise HealthFileError(f"{path}: not valid YAML: {error}") from None
    services = data.get("services") if isinstance(data, dict) else None
    if not isinstance(services, dict):
        raise HealthFileError(f"{path}: expected a top-level 'services:' mapping")
    policies = {}
    for name, raw in services.items():
        try:
            policies[name] = _policy(name, raw or {})
        except (TypeError, ValueError) as error:
            raise HealthFileError(f"{path}: service {name!r}: {error}") from None
    return policies


def _policy(name: str, raw: dict[str, Any]) -> HealthPolicy:
    import promql_parser

    known = {f for f in HealthPolicy.__dataclass_fields__ if f != "service"}
    unknown = set(raw) - known
    if unknown:
        raise ValueError(f"unknown key(s) {', '.join(sorted(unknown))}")
    for key in ("error_rate", "latency"):
        if raw.get(key):
            try:
                promql_parser.parse(raw[key].replace("$cluster", "x"))
            except ValueError as error:
                raise ValueError(f"{key}: invalid PromQL: {error}") from None
    threshold = int(raw.get("threshold", 3))
    if threshold < 1:
        raise ValueError("threshold must be at least 1")
    return HealthPolicy(
        service=name,
        error_rate=raw.get("error_rate"),
        error_rate_max=raw.get("error_rate_max"),
        latency=raw.get("latency"),
        latency_max_seconds=raw.get("latency_max_seconds"),
        threshold=threshold,
        interval=parse_duration(raw.get("interval", "60s")),
        watch=parse_duration(raw.get("watch", "30m")),
        dry_run=bool(raw.get("dry_run", False)),
    )


def breaches(
    policy: HealthPolicy, cluster: str, deployment: Any, pods: list[Any], prometheus: Any,
    now: dt.datetime,
) -> list[str]:  # fmt: skip
    """What is wrong with the service in the cluster now (empty: healthy)."""
    found = []
    if deployment is not None and deployment.rollout_failed:
        found.append("rollout failed (ProgressDeadlineExceeded)")
    crashing = [p.name for p in pods if "CrashLoopBackOff" in p.waiting_reasons]
    if crashing:
        found.append(f"crash-looping pods: {', '.join(sorted(crashing))}")
    for query, limit, what in (
        (policy.error_rate, policy.error_rate_max, "error rate"),
        (policy.latency, policy.latency_max_seconds, "latency"),
    ):
        if not query or limit is None or prometheus is None:
            continue
        values = [v for _, v in prometheus.instant_query(query.replace("$cluster", cluster), now)]
        if values and max(values) > limit:
            found.append(f"{what} {max(values):.4g} above {limit:g}")
    return found


def advance(counts: dict[str, int], key: str, breached: bool) -> int:
    """Consecutive breached checks of one deployment and cluster (reset by a healthy one)."""
    counts[key] = counts.get(key, 0) + 1 if breached else 0
    return counts[key]
