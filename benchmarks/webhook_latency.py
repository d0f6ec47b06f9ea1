"""Time from a GitLab pipeline event to its execution row in the warehouse, beside the poll.

The API is served by uvicorn on a loopback port in its own process (as `timbel api serve`
serves it) over a scratch PostgreSQL database. Each round POSTs a Pipeline Hook (GitLab's
documented payload, a new pipeline id and delivery UUID each time) to
/api/v1/webhooks/gitlab, then reads the warehouse from this process until the pipeline's
execution row is there. Figures: the median and p95 of that time over N rounds, and the
polling sensors' interval (60 s, `minimum_interval_seconds` of gitlab_pipeline_sensor) as the
baseline: without the webhook a new pipeline waits up to a whole interval, half on average,
before its ingestion run even starts. Target (issue 15): under 5 s.
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

FIXTURE = Path(__file__).resolve().parents[1] / "tests/fixtures/gitlab/hooks/pipeline_hook.json"
POLL_INTERVAL_SECONDS = 60.0
SECRET = "bench-secret"
STARTUP_LIMIT = 60.0


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _serve(url: str, port: int, home: Path) -> subprocess.Popen:
    env = os.environ | {
        "TIMBEL_DATABASE_URL": url,
        "TIMBEL_HOME": str(home),
        "GITLAB_WEBHOOK_SECRET": SECRET,
        "PYTHONPATH": str(Path(__file__).resolve().parents[1]),
    }
    command = [sys.executable, "-m", "uvicorn", "--factory",
               "timbel_dagster.api.app:create_app", "--host", "127.0.0.1", "--port", str(port),
               "--log-level", "warning"]  # fmt: skip
    server = subprocess.Popen(command, env=env)
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


def _post(port: int, body: bytes) -> None:
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}/api/v1/webhooks/gitlab",
        data=body,
        method="POST",
        headers={
            "X-Gitlab-Token": SECRET,
            "X-Gitlab-Event": "Pipeline Hook",
            "X-Gitlab-Webhook-UUID": str(uuid.uuid4()),
            "Content-Type": "application/json",
        },
    )
    with urllib.request.urlopen(request, timeout=30) as response:  # nosec B310: loopback
        if response.status != 202:
            raise RuntimeError(f"the webhook answered {response.status}")


def measure(url: str, rounds: int) -> list[float]:
    from sqlalchemy import select

    from timbel_dagster.warehouse import migrate
    from timbel_dagster.warehouse.engine import get_engine
    from timbel_dagster.warehouse.schema.models import PipelineExecution

    migrate.upgrade(url)
    engine = get_engine(url)
    payload = json.loads(FIXTURE.read_text())
    port = _free_port()
    home = Path(os.environ.get("TMPDIR", "/tmp")) / f"timbel-bench-{port}"
    home.mkdir(exist_ok=True)
    server = _serve(url, port, home)
    latencies = []
    try:
        for n in range(rounds + 1):  # the first round warms the server's pool: not counted
            payload["object_attributes"]["id"] = 1000 + n
            body = json.dumps(payload).encode()
            started = time.perf_counter()
            _post(port, body)
            query = select(PipelineExecution.id).where(
                PipelineExecution.external_id == str(1000 + n)
            )
            while True:
                with engine.connect() as connection:
                    if connection.execute(query).first() is not None:
                        break
            if n:
                latencies.append(time.perf_counter() - started)
    finally:
        server.terminate()
        server.wait(timeout=30)
    return latencies


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=50)
    args = parser.parse_args()
    with scratch_postgres() as url:
        latencies = measure(url, args.rounds)
    median = statistics.median(latencies)
    p95 = statistics.quantiles(latencies, n=20)[-1] if len(latencies) >= 2 else latencies[0]
    report("webhook_to_row_median_seconds", median, "s", POLL_INTERVAL_SECONDS / median,
           "60 s poll interval (target < 5 s)")  # fmt: skip
    report("webhook_to_row_p95_seconds", p95, "s")
    report("poll_interval_seconds", POLL_INTERVAL_SECONDS, "s (worst wait without webhooks)")
    report("webhook_rounds", len(latencies), "rounds")


if __name__ == "__main__":
    main()
