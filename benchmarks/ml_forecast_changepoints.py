"""The cost forecaster and the change-point detector on the shared public data, beside the
baselines computed in the same run.

- Bitbrains Rnd (GWA-T-12), July-August 2013, priced at OpenCost's defaults: one week ahead
  at hourly resolution from 4 rolling origins; at each origin the method is chosen by
  backtests on the weeks before it only. Per origin and in total: MASE (scale: in-sample
  seasonal-naive, m=24) and the weekly total's error against the last-7-days mean and
  seasonal naive, the weekly total with its 80 % interval, and the hourly intervals'
  coverage.
- TCPD's 16 shared series: F1 and cover (TCPDBench's definitions, margin 5) against binary
  segmentation with default settings and against reporting nothing. The honest figure is the
  leave-one-series-out one (each series scored with the rule chosen on the other 15); the
  in-sample figure of the shipped rule is printed beside it, and one line per series.
Targets (issue 16, for held-out data): MASE < 0.75, weekly total error at most 0.8x the
better baseline's, 3 of 4 weekly totals inside their 80 % interval, 75-85 % of hours inside
the hourly 80 % interval; F1 and cover above binseg.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from benchmarks.common import report

DEFAULT_DATA = Path(__file__).resolve().parents[1] / ".." / "shared" / "data"


def forecast(data: Path) -> None:
    from tests.ml.bitbrains import bitbrains_cost_series
    from timbel_dagster.ml.forecast.eval import evaluate_series

    path = data / "usage-bitbrains" / "rnd_all500vms_5min_sum_jul_aug.csv"
    if not path.is_file():
        print(f"# forecast: skipped, {path} is missing", flush=True)
        return
    r = evaluate_series(bitbrains_cost_series(path), horizon=168, origins=4)
    print(f"# forecast selection: {r['selection']}", flush=True)
    for row in r["per_origin"]:
        day = row["origin"][:10]
        low, high = row["weekly_total_interval80"]
        print(f"# forecast {day}: {row['model']}", flush=True)
        for name, baseline in (
            ("mean7d", "last-7-days mean"),
            ("seasonal_naive", "seasonal naive"),
        ):
            report(f"forecast_cost_{day}_mase_vs_{name}", row["forecast_mase"], "MASE",
                   row["forecast_mase"] / row[f"{name}_mase"],
                   f"{baseline} {row[f'{name}_mase']:.3f}")  # fmt: skip
            report(f"forecast_cost_{day}_weekly_total_error_vs_{name}",
                   row["forecast_total_error_pct"], "%",
                   _ratio(row["forecast_total_error_pct"], row[f"{name}_total_error_pct"]),
                   f"{baseline} {row[f'{name}_total_error_pct']:.1f} %")  # fmt: skip
        inside = "inside" if row["weekly_total_in_interval80"] else "OUTSIDE"
        report(f"forecast_cost_{day}_weekly_total", row["actual_total"],
               f"USD actual, forecast {row['forecast_total']:.0f}, 80 % interval "
               f"{low:.0f}-{high:.0f} ({inside})")  # fmt: skip
        report(f"forecast_cost_{day}_hourly_coverage_80", 100 * row["coverage80"], "% of hours")
    mean7, naive = r["baseline_mean7d_mase"], r["baseline_seasonal_naive_mase"]
    report(
        "forecast_cost_mase", r["mase"], "MASE", r["mase"] / mean7, f"last-7-days mean {mean7:.3f}"
    )
    report("forecast_cost_mase_vs_seasonal_naive", r["mase"], "MASE", r["mase"] / naive,
           f"seasonal naive {naive:.3f}")  # fmt: skip
    bound = r["hindsight_daily_shape_mase"]  # a week a horizon: every hour twice or more
    report("forecast_cost_hindsight_daily_shape_mase", bound,
           "MASE: each week's own median per hour of day, known only afterwards, the lowest a "
           f"level and daily shape can score (the forecaster {r['mase']:.3f})")  # fmt: skip
    for name, baseline in (("mean7d", "last-7-days mean"), ("seasonal_naive", "seasonal naive")):
        ours, theirs = r["weekly_total_error_pct"], r[f"baseline_{name}_weekly_total_error_pct"]
        report(f"forecast_cost_weekly_total_error_vs_{name}", ours, "%", _ratio(ours, theirs),
               f"{baseline} {theirs:.1f} %")  # fmt: skip
    report("forecast_cost_weekly_total_in_interval80", r["weekly_total_in_interval80"],
           f"of {r['n_origins']} weeks (goal: at least 3 of 4)")  # fmt: skip
    report("forecast_cost_hourly_coverage_80", 100 * r["hourly_coverage80"],
           "% of hours inside the 80 % interval (goal 75-85)")  # fmt: skip
    report("forecast_cost_hourly_coverage_95", 100 * r["hourly_coverage95"],
           "% of hours inside the 95 % interval")  # fmt: skip


def _ratio(value: float | None, baseline: float | None) -> float | None:
    return value / baseline if value is not None and baseline else None


def changepoints(data: Path) -> None:
    from timbel_dagster.ml.changepoints.selection import evaluate_directory

    path = data / "changepoints-tcpd"
    if not path.is_dir():
        print(f"# changepoints: skipped, {path} is missing", flush=True)
        return
    r = evaluate_directory(path)
    loso, selection = r["loso"], r["selection"]
    print(
        f"# changepoints: shipped rule {selection['shipped']}, chosen on all "
        f"{r['n_series']} series from a grid of {len(selection['grid'])}; LOSO = each series "
        "scored with the rule chosen on the others",
        flush=True,
    )
    for figure in ("f1", "cover"):
        binseg, zero = r[f"baseline_binseg_{figure}"], r[f"baseline_zero_{figure}"]
        ours = loso[figure]
        report(f"changepoints_{figure}_loso", ours, figure, ours / binseg,
               f"binseg {binseg:.4f}; LOSO {ours:.4f}; report nothing {zero:.4f}")  # fmt: skip
        report(f"changepoints_{figure}_in_sample", r[figure], figure, r[figure] / binseg,
               f"binseg {binseg:.4f}; in sample {r[figure]:.4f}")  # fmt: skip
    for row in r["series"]:
        print(
            f"changepoints_series_{row['name']}: LOSO F1 {row['loso_f1']:.3f} cover "
            f"{row['loso_cover']:.3f} ({row['loso_rule']}); in sample F1 {row['f1']:.3f} cover "
            f"{row['cover']:.3f}; binseg F1 {row['baseline_binseg_f1']:.3f} cover "
            f"{row['baseline_binseg_cover']:.3f}; report nothing F1 "
            f"{row['baseline_zero_f1']:.3f} cover {row['baseline_zero_cover']:.3f}",
            flush=True,
        )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    arguments = parser.parse_args()
    forecast(arguments.data)
    changepoints(arguments.data)
