"""The cost forecaster and the change-point detector on the shared public data, beside the
baselines computed in the same run.

- Bitbrains Rnd (GWA-T-12), July-August 2013, priced at OpenCost's defaults: one week ahead
  at hourly resolution from 4 rolling origins; MASE (scale: in-sample seasonal-naive, m=24)
  against the last-7-days mean and seasonal naive, and the error of the weekly total.
- TCPD's 16 shared series: F1 and cover (TCPDBench's definitions, margin 5) against binary
  segmentation with default settings and against reporting nothing. The honest figure is the
  leave-one-series-out one (each series scored with the rule chosen on the other 15); the
  in-sample figure of the shipped rule is printed beside it, and one line per series.
Targets (issue 6): MASE below the last-7-days mean, weekly total cost error under 20 %; F1 and
cover above binseg.
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
    mean7 = r["baseline_mean7d_mase"]
    report(
        "forecast_cost_mase", r["mase"], "MASE", r["mase"] / mean7, f"last-7-days mean {mean7:.3f}"
    )
    naive = r["baseline_seasonal_naive_mase"]
    report("forecast_cost_mase_vs_seasonal_naive", r["mase"], "MASE", r["mase"] / naive,
           f"seasonal naive {naive:.3f}")  # fmt: skip
    report("forecast_cost_weekly_total_error", r["weekly_total_error_pct"], "% (target < 20)")
    report(
        "forecast_cost_interval_coverage_95",
        100 * r["coverage95"],
        "% of actual hours inside the 95 % interval",
    )


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
