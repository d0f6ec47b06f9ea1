"""Freshness policies on the ingestion assets, so stale data shows in the Dagster UI.

Each ingestion asset (settings/freshness.py) carries a time-window freshness policy: WARN past
its warn window and FAIL past its fail window since its last successful materialization (of
any partition). Dagster's freshness daemon evaluates them (on by default since 1.12) and the
asset pages and the asset health show the state; the built-in `ingestion-stale` alert rule
reads the same windows (notify/staleness.py).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import dagster as dg

from timbel_dagster.settings.freshness import Windows


def policy(windows: Windows) -> dg.FreshnessPolicy:
    return dg.FreshnessPolicy.time_window(fail_window=windows.fail, warn_window=windows.warn)


def with_freshness(
    assets: Sequence[dg.AssetsDefinition], windows: Mapping[str, Windows]
) -> list[dg.AssetsDefinition]:
    """`assets`, those named in `windows` (`domain/table`) with their freshness policy.

    Raises:
        ValueError: `windows` names an asset that is not among `assets` (a renamed asset
            would otherwise silently lose its policy and its alert).
    """
    keys = {key.to_user_string() for asset in assets for key in asset.keys}
    unknown = sorted(set(windows) - keys)
    if unknown:
        raise ValueError(f"freshness windows name assets that do not exist: {', '.join(unknown)}")

    def apply(spec: dg.AssetSpec) -> dg.AssetSpec:
        found = windows.get(spec.key.to_user_string())
        return spec if found is None else dg.apply_freshness_policy(spec, policy(found))

    return [
        asset.map_asset_specs(apply)
        if any(key.to_user_string() in windows for key in asset.keys)
        else asset
        for asset in assets
    ]
