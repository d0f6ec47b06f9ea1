"""Generated data for the alert-rule benchmark: 10,000 gauge series of two hours at 15 s, as
OpenMetrics for promtool, and 500 PromQL rules that each watch a slice of them.

The series are `bench_cpu_ratio{cluster, namespace, pod}`: 20 clusters x 25 namespaces x
20 pods. Each has a fixed level in [0, 1) plus a slow wave of +-0.05, so a threshold of
0.9 catches about a tenth of a slice and a few series cross it between two ticks.
"""

from __future__ import annotations

import datetime as dt
import math
from pathlib import Path

METRIC = "bench_cpu_ratio"
CLUSTERS = [f"c{n:02d}" for n in range(20)]
NAMESPACES = [f"n{n:02d}" for n in range(25)]
PODS = [f"p{n:02d}" for n in range(20)]
SERIES = len(CLUSTERS) * len(NAMESPACES) * len(PODS)
START = dt.datetime(2026, 11, 1, tzinfo=dt.UTC)  # aligned to Prometheus' 2-hour blocks
STEP_SECONDS = 15
SAMPLES = 2 * 3600 // STEP_SECONDS  # two hours: 480 samples per series
END = START + dt.timedelta(seconds=(SAMPLES - 1) * STEP_SECONDS)  # the last sample
RULES = 500


def level(c: int, n: int, p: int) -> float:
    """A series' fixed level, spread evenly over [0, 1) by a multiplicative hash."""
    return ((c * 7919 + n * 104_729 + p * 1_299_709) * 2_654_435_761 % 1000) / 1000


def value(c: int, n: int, p: int, index: int) -> float:
    return round(level(c, n, p) + 0.05 * math.sin(index / 40 + p), 3)


def write_history(path: Path) -> None:
    """Every series' samples, one series after the other, in the OpenMetrics promtool reads."""
    start = int(START.timestamp())
    times = [start + i * STEP_SECONDS for i in range(SAMPLES)]
    with path.open("w") as out:
        out.write(f"# HELP {METRIC} CPU used over requested.\n# TYPE {METRIC} gauge\n")
        for c, cluster in enumerate(CLUSTERS):
            for n, namespace in enumerate(NAMESPACES):
                for p, pod in enumerate(PODS):
                    series = f'{METRIC}{{cluster="{cluster}",namespace="{namespace}",pod="{pod}"}}'
                    out.write(
                        "".join(
                            f"{series} {value(c, n, p, i)!r} {t}\n" for i, t in enumerate(times)
                        )
                    )
        out.write("# EOF\n")


def _expressions() -> list[str]:
    """500 different PromQL expressions: plain selectors over a cluster's or a namespace's
    series, a range function, and aggregations (some over all 10,000 series)."""
    m = METRIC
    exprs = []
    for cluster in CLUSTERS:  # 100: a cluster's 500 pods over a threshold
        exprs += [f'{m}{{cluster="{cluster}"}} > {t}' for t in (0.8, 0.85, 0.9, 0.95, 0.98)]
    for namespace in NAMESPACES:  # 100: a namespace's 400 pods across clusters
        exprs += [f'{m}{{namespace="{namespace}"}} > {t}' for t in (0.85, 0.9, 0.95, 0.99)]
    for cluster in CLUSTERS:  # 100: smoothed over five minutes
        exprs += [
            f'avg_over_time({m}{{cluster="{cluster}"}}[5m]) > {t}'
            for t in (0.82, 0.87, 0.92, 0.96, 0.99)
        ]
    for cluster in CLUSTERS:  # 100: per namespace averages
        exprs += [
            f'avg by (cluster, namespace) ({m}{{cluster="{cluster}"}}) > {t}'
            for t in (0.5, 0.55, 0.6, 0.65, 0.7)
        ]
    for namespace in NAMESPACES:  # 75: per cluster counts, peaks and sums of a namespace
        exprs += [
            f'count by (cluster) ({m}{{namespace="{namespace}"}} > 0.9) > 0',
            f'max by (cluster) ({m}{{namespace="{namespace}"}}) > 0.97',
            f'sum by (cluster) ({m}{{namespace="{namespace}", pod=~"p0.*"}}) > 5.5',
        ]
    for namespace in NAMESPACES:  # 25: spread within a namespace, per cluster
        exprs.append(f'stddev by (cluster) ({m}{{namespace="{namespace}"}}) > 0.3')
    assert len(exprs) == len(set(exprs)) == RULES
    return exprs


def rules_yaml() -> str:
    """The 500 rules, in the rule file format; half have a summary template, a third wait
    five minutes (`for`) before firing."""
    severities = ("critical", "high", "warning", "info")
    lines = ["rules:"]
    for index, expr in enumerate(_expressions()):
        lines += [
            f"  - name: bench-{index:03d}",
            f"    severity: {severities[index % 4]}",
            f"    expr: '{expr}'",
            f"    for: {'5m' if index % 3 == 0 else '0s'}",
            "    renotify: 1h",
        ]
        if index % 2 == 0:
            lines.append(
                '    summary: "{{ labels.cluster }}/{{ labels.namespace }} at '
                '{{ (value * 100) | round | int }} %"'
            )
    return "\n".join(lines) + "\n"
