"""Time from a GitLab pipeline event to its execution row in the warehouse, and to the
ingestion run the Dagster daemon queues for it, beside the poll.

The API is served by uvicorn on a loopback port in its own process (as `timbel api serve`
serves it) over a scratch PostgreSQL database, while `dagster-daemon run` runs the code
location with `webhook_build_sensor` started (unless --no-daemon). Each round POSTs a
Pipeline Hook (GitLab's documented payload, a new pipeline id and delivery UUID each time) to
/api/v1/webhooks/gitlab, then reads from this process:
- the warehouse, until the pipeline's execution row is there (the route writes it);
- the delivery, until the sensor has taken it, and Dagster's run storage, until the
  `ci_ingestion_job` run the sensor requested for it exists (queued: the instance's queued
  run coordinator launches nothing, so the runs' own processes do not load the machine and
  the figure is the daemon's latency, not the ingestion's).
Figures: the median and p95 of each time over N rounds, and the polling sensors' interval
(60 s, `minimum_interval_seconds` of gitlab_pipeline_sensor) as the baseline: without the
webhook a new pipeline waits up to a whole interval, half on average, before its ingestion
run is even requested. Target (issue 15): under 5 s to the row, with the daemon running.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import statistics
import subprocess
import sys
import time
import urllib.request
import uuid
from pathlib import Path

from benchmarks.common import report, scratch_postgres

ROOT = Path(__file__).resolve().parents[1]
FIXTURE = ROOT / "tests/fixtures/gitlab/hooks/pipeline_hook.json"
POLL_INTERVAL_SECONDS = 60.0
SECRET = "bench-secret"
STARTUP_LIMIT = 60.0
# The daemon loads the code location and ticks the sensor for the first time within this.
DAEMON_STARTUP_LIMIT = 180.0
ROUND_LIMIT = 120.0
SENSOR = "webhook_build_sensor"
# Runs are queued, never launched: the figure is the daemon's, not the ingestion's.
DAGSTER_YAML = """\
telemetry:
  enabled: false
run_coordinator:
  module: dagster._core.run_coordinator
  class: QueuedRunCoordinator
  config:
    max_concurrent_runs: 0
"""


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _environment(url: str, home: Path) -> dict[str, str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("TIMBEL_", "DAGSTER_"))}
    return clean | {
        "TIMBEL_DATABASE_URL": url,
        "TIMBEL_HOME": str(home),
        "TIMBEL_SAMPLE_DATA": "false",
        "GITLAB_WEBHOOK_SECRET": SECRET,
        "DAGSTER_HOME": str(home / "dagster"),
        "PYTHONPATH": str(ROOT),
    }


def _start_daemon(env: dict[str, str]) -> subprocess.Popen:
    """`dagster-daemon run` on the code location, with the webhook sensor started."""
    dagster_home = Path(env["DAGSTER_HOME"])
    dagster_home.mkdir(parents=True, exist_ok=True)
    (dagster_home / "dagster.yaml").write_text(DAGSTER_YAML)
    bin_dir = Path(sys.executable).parent
    subprocess.run(
        [str(bin_dir / "dagster"), "sensor", "start", SENSOR, "-w", "workspace.yaml"],
        cwd=ROOT, env=env, check=True, capture_output=True,
    )  # fmt: skip
    return subprocess.Popen(
        [str(bin_dir / "dagster-daemon"), "run", "-w", "workspace.yaml"],
        cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip


def _serve(env: dict[str, str], port: int) -> subprocess.Popen:
    command = [sys.executable, "-m", "uvicorn", "--factory",
               "timbel_dagster.api.app:create_app", "--host", "127.0.0.1", "--port", str(port),
               "--log-level", "warning"]  # fmt: skip
    server = subprocess.Popen(command, env=env, cwd=ROOT)
    deadline = time.monotonic() + STARTUP_LIMIT
    while True:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return server
        except OSError:
            if server.poll() is not None or time.monotonic() > deadline:
                server.kill()
                raise RuntimeError("the API did not start") from None
            time.sleep(0.05)  # the server's start-up, not a measurement


def _post(port: int, body: bytes) -> str:
    """POST a Pipeline Hook; its delivery key (the webhook UUID)."""
    delivery = str(uuid.uuid4())
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}/api/v1/webhooks/gitlab",
        data=body,
        method="POST",
        headers={
            "X-Gitlab-Token": SECRET,
            "X-Gitlab-Event": "Pipeline Hook",
            "X-Gitlab-Webhook-UUID": delivery,
            "Content-Type": "application/json",
        },
    )
    with urllib.request.urlopen(request, timeout=30) as response:  # nosec B310: loopback
        if response.status != 202:
            raise RuntimeError(f"the webhook answered {response.status}")
    return delivery


def _wait(what: str, found, limit: float) -> None:
    """Poll `found()` until it is true (a measurement: no sleep), or fail naming `what`."""
    deadline = time.monotonic() + limit
    while not found():
        if time.monotonic() > deadline:
            raise RuntimeError(f"no {what} within {limit:.0f} s")


def measure(url: str, rounds: int, daemon: bool) -> dict[str, list[float]]:
    """Per round: seconds from the POST to the row, and (with the daemon) to the delivery
    taken by the sensor and to the queued run."""
    import dagster as dg
    from sqlalchemy import select

    from timbel_dagster.warehouse import migrate
    from timbel_dagster.warehouse.engine import get_engine
    from timbel_dagster.warehouse.schema.identity import WebhookDelivery
    from timbel_dagster.warehouse.schema.models import PipelineExecution

    migrate.upgrade(url)
    engine = get_engine(url)
    payload = json.loads(FIXTURE.read_text())
    port = _free_port()
    home = Path(os.environ.get("TMPDIR", "/tmp")) / f"timbel-bench-{port}"
    home.mkdir(exist_ok=True)
    env = _environment(url, home)
    processes = [_start_daemon(env)] if daemon else []
    instance = None
    if daemon:
        os.environ["DAGSTER_HOME"] = env["DAGSTER_HOME"]
        instance = dg.DagsterInstance.get()
    processes.append(_serve(env, port))
    figures: dict[str, list[float]] = {"row": [], "taken": [], "queued": []}

    def one_round(n: int) -> dict[str, float]:
        payload["object_attributes"]["id"] = 1000 + n
        body = json.dumps(payload).encode()
        started = time.perf_counter()
        delivery_key = _post(port, body)
        times = {}
        row = select(PipelineExecution.id).where(PipelineExecution.external_id == str(1000 + n))
        _wait("execution row", lambda: _first(engine, row) is not None, ROUND_LIMIT)
        times["row"] = time.perf_counter() - started
        if instance is None:
            return times
        delivery = select(WebhookDelivery.run_key).where(
            WebhookDelivery.delivery_key == delivery_key, WebhookDelivery.status == "taken"
        )
        limit = ROUND_LIMIT if n else DAEMON_STARTUP_LIMIT
        _wait("taken delivery", lambda: _first(engine, delivery) is not None, limit)
        times["taken"] = time.perf_counter() - started
        run_key = _first(engine, delivery)
        runs = dg.RunsFilter(tags={"dagster/run_key": run_key})
        _wait("queued run", lambda: instance.get_runs_count(filters=runs) > 0, ROUND_LIMIT)
        times["queued"] = time.perf_counter() - started
        return times

    try:
        for n in range(rounds + 1):  # the first round warms the server and the daemon
            times = one_round(n)
            if n:
                for name, value in times.items():
                    figures[name].append(value)
    finally:
        for process in processes:
            process.terminate()
        for process in processes:
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
    return figures


def _first(engine, query):
    with engine.connect() as connection:
        return connection.execute(query).scalar()


def _quantiles(values: list[float]) -> tuple[float, float]:
    p95 = statistics.quantiles(values, n=20)[-1] if len(values) >= 2 else values[0]
    return statistics.median(values), p95


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=20)
    parser.add_argument(
        "--no-daemon", action="store_true", help="the route alone, without dagster-daemon"
    )
    args = parser.parse_args()
    with scratch_postgres() as url:
        figures = measure(url, args.rounds, daemon=not args.no_daemon)
    median, p95 = _quantiles(figures["row"])
    with_daemon = "" if args.no_daemon else ", daemon running"
    report("webhook_to_row_median_seconds", median, "s", POLL_INTERVAL_SECONDS / median,
           f"60 s poll interval (target < 5 s{with_daemon})")  # fmt: skip
    report("webhook_to_row_p95_seconds", p95, "s")
    if figures["queued"]:
        median, p95 = _quantiles(figures["taken"])
        report("webhook_to_sensor_taken_median_seconds", median, "s")
        median, p95 = _quantiles(figures["queued"])
        report("webhook_to_ingestion_run_queued_median_seconds", median, "s",
               POLL_INTERVAL_SECONDS / median, "60 s poll interval")  # fmt: skip
        report("webhook_to_ingestion_run_queued_p95_seconds", p95, "s")
    report("poll_interval_seconds", POLL_INTERVAL_SECONDS, "s (worst wait without webhooks)")
    report("webhook_rounds", len(figures["row"]), "rounds")


if __name__ == "__main__":
    main()
