"""Which clusters a Prometheus holds, and how to select each one's series.

A multi-cluster Prometheus (Thanos, Mimir, federation, remote write) tells clusters apart by
a label on every series (`PROMETHEUS_CLUSTER_LABEL`, `cluster` by default). The most common
installation, kube-prometheus-stack with its defaults, is one Prometheus per cluster whose
series carry no such label: that Prometheus holds exactly one cluster, named by
`PROMETHEUS_CLUSTER_NAME`, else by the clusters file when it lists one cluster, else
`default-cluster` (OpenCost's default cluster id). Its queries carry no cluster matcher.

What a Prometheus holds is read from the kube-state-metrics and cAdvisor series themselves:
one `count by (__name__, <label>)` over the window asked about. Series of both kinds (some
labelled, some not) are collected as labelled clusters plus, when a name is set, one more
cluster selected by `<label>=""` (the series without the label); without a name the
unlabelled ones are reported as left out. Every such decision comes with a notice, so a
cluster never silently yields no data.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from timbel_dagster.records.cluster_metrics import HOUR

if TYPE_CHECKING:
    from timbel_dagster.resources.prometheus import PrometheusClient

# Series that exist wherever kube-state-metrics or cAdvisor (through the kubelet) is scraped.
DISCOVERY_METRICS = (
    "kube_node_info",
    "kube_node_status_capacity",
    "kube_pod_info",
    "kube_pod_status_phase",
    "container_cpu_usage_seconds_total",
    "container_memory_working_set_bytes",
)
DEFAULT_CLUSTER_NAME = "default-cluster"
DISCOVERY_WINDOW = dt.timedelta(minutes=10)  # clusters "now": series seen this recently
LOOKBACK = dt.timedelta(minutes=5)  # Prometheus' default lookback delta
SCAN_STEP = dt.timedelta(minutes=15)  # every 15 min, each seeing 5 min back: a whole hour
NAME_SETTING = "PROMETHEUS_CLUSTER_NAME"
FILE_SETTING = "TIMBEL_CLUSTERS_FILE"


class ClusterLabelError(ValueError):
    """The configured clusters cannot be matched to the clusters Prometheus holds."""


@dataclass(frozen=True)
class LabelScan:
    """What the discovery series in a window say about clusters.

    Attributes:
        labelled: the values of the cluster label found.
        unlabelled: the names of the discovery metrics found without the label.
    """

    labelled: frozenset[str]
    unlabelled: tuple[str, ...]


@dataclass(frozen=True)
class ClusterLayout:
    """The clusters to collect and how to select the series of each.

    Attributes:
        clusters: the cluster names, in the order to collect them.
        labelled: the values of the cluster label Prometheus has.
        unlabelled: the cluster made of the series without the label, if any.
        notices: what the operator should know (mismatches, a default name).
    """

    clusters: tuple[str, ...]
    labelled: frozenset[str]
    unlabelled: str | None
    notices: tuple[str, ...]


def scan_query(label: str) -> str:
    """One series per discovery metric and value of `label` (no value: series without it)."""
    names = "|".join(DISCOVERY_METRICS)
    return f'count by (__name__, {label}) ({{__name__=~"{names}"}})'


def scan(
    client: PrometheusClient,
    label: str,
    start: dt.datetime,
    end: dt.datetime,
    step: dt.timedelta,
) -> LabelScan:
    """Which cluster label values, and which unlabelled discovery metrics, have samples
    between `start` and `end` (evaluated every `step`, each seeing Prometheus' lookback)."""
    labelled: set[str] = set()
    unlabelled: set[str] = set()
    for series in client.range_query(scan_query(label), start, end, step):
        value = series.label(label)
        if value:
            labelled.add(value)
        else:
            unlabelled.add(series.label("__name__") or "")
    return LabelScan(frozenset(labelled), tuple(sorted(unlabelled - {""})))


def _names(values: Iterable[str]) -> str:
    return ", ".join(sorted(values))


def _metrics(names: tuple[str, ...]) -> str:
    """`a, b` or `a, b and 4 more`: which metrics, without a wall of names."""
    shown = ", ".join(names[:2])
    return shown if len(names) <= 2 else f"{shown} and {len(names) - 2} more"


def _single_name(
    label: str, configured: list[str] | None, name: str | None, notices: list[str]
) -> str:
    """The name of the one cluster whose series carry no label: the setting, else the only
    cluster of the clusters file, else the default (with a notice saying how to name it)."""
    if name:
        if configured is not None and name not in configured:
            raise ClusterLabelError(
                f"{NAME_SETTING} is {name!r}, which {FILE_SETTING} does not list "
                f"(it lists: {_names(configured) or 'no cluster'})"
            )
        return name
    if configured is not None:
        if len(configured) == 1:
            return configured[0]
        raise ClusterLabelError(
            f"Prometheus series carry no '{label}' label, so they are one cluster, but "
            f"{FILE_SETTING} lists {len(configured)} ({_names(configured) or 'none'}): set "
            f"{NAME_SETTING} to the cluster this Prometheus scrapes"
        )
    notices.append(
        f"Prometheus series carry no '{label}' label: they are collected as one cluster "
        f"named '{DEFAULT_CLUSTER_NAME}'; set {NAME_SETTING} (or list that one cluster in "
        f"{FILE_SETTING}) to name it"
    )
    return DEFAULT_CLUSTER_NAME


def resolve(
    found: LabelScan, label: str, configured: list[str] | None, name: str | None
) -> ClusterLayout:
    """The clusters to collect from what Prometheus holds (`found`), the clusters file's
    names (`configured`, None without a file) and `PROMETHEUS_CLUSTER_NAME` (`name`).

    Raises:
        ClusterLabelError: the configuration names clusters that cannot all be told apart
            (unlabelled series and several clusters without a name saying which they are).
    """
    notices: list[str] = []
    labelled = found.labelled
    unlabelled: str | None = None
    if found.unlabelled and not labelled:
        unlabelled = _single_name(label, configured, name, notices)
    elif found.unlabelled and name:
        if name in labelled:
            raise ClusterLabelError(
                f"{NAME_SETTING} is {name!r}, which Prometheus also has as a value of the "
                f"'{label}' label: name the series without the label otherwise"
            )
        unlabelled = _single_name(label, configured, name, notices)
        notices.append(
            f"some series carry no '{label}' label ({_metrics(found.unlabelled)}): they are "
            f"collected as cluster '{name}' ({NAME_SETTING}), beside the labelled clusters "
            f"({_names(labelled)})"
        )
    elif found.unlabelled:
        notices.append(
            f"some series carry no '{label}' label ({_metrics(found.unlabelled)}) while "
            f"others name their cluster ({_names(labelled)}): the unlabelled ones are not "
            f"collected; give them the label (Prometheus external_labels or a relabel rule) "
            f"or set {NAME_SETTING} to collect them as one more cluster"
        )
    elif name and labelled and name not in labelled:
        notices.append(
            f"{NAME_SETTING} ({name!r}) is not used: the series name their cluster in the "
            f"'{label}' label ({_names(labelled)})"
        )
    if configured is not None:
        clusters = list(configured)
        if unlabelled is not None and not labelled:
            others = [c for c in configured if c != unlabelled]
            if others:
                notices.append(
                    f"Prometheus holds one cluster, '{unlabelled}'; the other clusters of "
                    f"{FILE_SETTING} have no metrics in it: {', '.join(others)}"
                )
            clusters = [unlabelled]
        elif labelled:
            missing = [c for c in configured if c not in labelled and c != unlabelled]
            if missing:
                notices.append(
                    f"{FILE_SETTING} lists clusters no series name in the '{label}' label: "
                    f"{', '.join(missing)} (Prometheus has: {_names(labelled)})"
                )
    else:
        clusters = sorted(labelled | ({unlabelled} if unlabelled else set()))
    return ClusterLayout(tuple(clusters), labelled, unlabelled, tuple(notices))


class PrometheusClusters:
    """The clusters of one Prometheus, decided per window from its series, and the selector
    of each cluster's series there. What the operator should know collects in `notices`."""

    def __init__(
        self,
        client: PrometheusClient,
        label: str,
        step: dt.timedelta,
        configured: list[str] | None,
        name: str | None,
    ) -> None:
        self.client, self.label, self.step = client, label, step
        self.configured, self.name = configured, name
        self.notices: list[str] = []
        self._layouts: dict[tuple[dt.datetime, dt.datetime, dt.timedelta], ClusterLayout] = {}

    def _notice(self, text: str) -> None:
        if text not in self.notices:
            self.notices.append(text)

    def layout(self, start: dt.datetime, end: dt.datetime, step: dt.timedelta) -> ClusterLayout:
        """Which clusters the series between `start` and `end` hold (one query, kept)."""
        at = (start, end, step)
        if at not in self._layouts:
            found = scan(self.client, self.label, start, end, step)
            layout = resolve(found, self.label, self.configured, self.name)
            if not found.labelled and not found.unlabelled:
                self._notice(
                    "no kube-state-metrics or cAdvisor series in Prometheus from "
                    f"{start:%Y-%m-%d %H:%M} to {end:%Y-%m-%d %H:%M} UTC"
                )
            for text in layout.notices:
                self._notice(text)
            self._layouts[at] = layout
        return self._layouts[at]

    def names(self, at: dt.datetime | None = None) -> list[str]:
        """The clusters with series in the ten minutes before `at` (default now)."""
        end = (at or dt.datetime.now(dt.UTC)).replace(microsecond=0)
        return list(self.layout(end - DISCOVERY_WINDOW, end, self.step).clusters)

    def selector(self, cluster: str, hours: list[dt.datetime]) -> Callable[..., str]:
        """A function of extra matchers that gives the selector of `cluster`'s series in
        `hours`: `{<label>="<cluster>", ...}`, or for the cluster of unlabelled series no
        cluster matcher (`<label>=""` where labelled clusters share the Prometheus)."""
        first, last = hours[0], hours[-1] + HOUR
        layout = self.layout(first + LOOKBACK, last - SCAN_STEP + LOOKBACK, SCAN_STEP)
        label = self.label
        if cluster == layout.unlabelled:
            own: tuple[str, ...] = (f'{label}=""',) if layout.labelled else ()
        else:
            escaped = cluster.replace("\\", "\\\\").replace('"', '\\"')
            own = (f'{label}="{escaped}"',)
            if cluster not in layout.labelled and (layout.labelled or layout.unlabelled):
                where = (
                    f"they are collected as '{layout.unlabelled}'"
                    if layout.unlabelled and not layout.labelled
                    else f"it has: {_names(layout.labelled)}"
                )
                self._notice(
                    f"cluster '{cluster}': no series with {label}=\"{escaped}\" in Prometheus "
                    f"from {first:%Y-%m-%d %H:%M} to {last:%Y-%m-%d %H:%M} UTC ({where})"
                )
        return lambda *matchers: "{" + ", ".join((*own, *matchers)) + "}"
