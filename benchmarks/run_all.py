"""`make bench`: every benchmark, one line per figure.

Each benchmark runs in a fresh interpreter, so that one's memory peak or warm caches never
flatter the next (the log-follow figure is a peak-memory growth).
"""

from __future__ import annotations

import re
import subprocess
import sys

FIGURE = re.compile(r"^[a-z0-9_]+: ")  # `name: value unit (ratio vs baseline)`
BENCHMARKS = (
    ("import time (median of 7 fresh interpreters each, alternating)", "import_time"),
    ("bulk upsert into PostgreSQL (100,000 executions + 500,000 stages)", "upsert"),
    ("Jenkins backfill, 100 jobs x 1,000 builds, from the fake Jenkins", "jenkins_backfill"),
    ("jenkins_build_sensor tick cost", "sensor_tick"),
    (
        "timbel ingest over 10 years of a GitLab with builds on 30 days, beside its HTTP time",
        "history_range",
    ),
    ("following a 200 MB log that grows while read, 3 forced disconnects", "log_follow"),
    (
        "alert rules: 500 rules x 10,000 series in a real Prometheus; notification noise",
        "alert_rules",
    ),
    ("export of 30 days at a 15 s step for 200 series from a real Prometheus", "metrics_export"),
    (
        "deploy: automatic rollback (health checks, racing triggers); rollout to 3 clusters",
        "deploy_rollout",
    ),
    ("risk model on the public JIT datasets, time-ordered 80/20, beside its baselines", "ml_risk"),
    (
        "cost forecast (Bitbrains) and change points (TCPD), beside their baselines",
        "ml_forecast_changepoints",
    ),
    ("Trivy report import: 5,000 vulnerabilities", "scan_import"),
    (
        "point-in-time recovery: base backup, 256 MB of writes, recovery to the middle",
        "pitr",
    ),
    ("analyze-repo on a generated 10,000-file repository", "analyze_repo"),
    ("REST API under load: uvicorn on loopback, 20,000 executions, 16 connections", "api_load"),
    (
        "API list and search routes on 1,000,000 executions: EXPLAIN ANALYZE, no Seq Scan",
        "api_explain",
    ),
    (
        "GitLab webhook to execution row (served API, PostgreSQL), beside the poll",
        "webhook_latency",
    ),
    (
        "backup and restore of a 1.2 GiB warehouse, encrypted, beside pg_dump | pg_restore",
        "backup",
    ),
)


def main() -> int:
    failed = 0
    for title, module in BENCHMARKS:
        print(f"# {title}", flush=True)
        completed = subprocess.run(
            [sys.executable, "-m", f"benchmarks.{module}"], capture_output=True, text=True
        )
        lines = [line for line in completed.stdout.splitlines() if FIGURE.match(line)]
        print("\n".join(lines), flush=True)
        if completed.returncode != 0:
            failed += 1
            print(f"{module} failed:\n{completed.stderr[-2000:]}", flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
