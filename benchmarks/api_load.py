"""Load on the REST API: uvicorn on loopback over a PostgreSQL warehouse of sample size, and
a small async load generator.

Figures per route: requests/s, p50 and p99 latency, with N concurrent connections for a
fixed time each, routes one after the other. The baseline, measured in the same run, is
`GET /api/v1/openapi.json`: a cached document, no token and no SQL, so the ratio is what
authentication (token hash lookup, principal, rate limit) and the query add to the
framework's own cost. The server is a separate process (one uvicorn worker), so the load
generator does not share its interpreter.

    .venv/bin/python -m benchmarks.api_load [--executions 20000] [--connections 16]
                                            [--seconds 10]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import socket
import statistics
import subprocess
import sys
import time

import httpx

from benchmarks.common import report, scratch_postgres
from benchmarks.upsert import bulk, make_executions, store_pipelines

BASELINE = "/api/v1/openapi.json"


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def prepare(url: str, executions: int) -> str:
    """The warehouse at head with `executions` executions and an admin; the admin's token."""
    from timbel_dagster.identity.tokens import create_token
    from timbel_dagster.warehouse import migrate
    from timbel_dagster.warehouse.engine import get_engine
    from timbel_dagster.warehouse.schema.ids import stable_id
    from timbel_dagster.warehouse.schema.models import User

    migrate.upgrade(url)
    store_pipelines(url)
    bulk(url, make_executions(executions))
    engine = get_engine(url)
    with engine.begin() as connection:
        connection.execute(User.__table__.insert().values(
            id=stable_id("users", "admin"), source="bench", name="admin", display_name="admin",
            email="admin@example.com", role="admin", team=None, slack_id=None,
        ))  # fmt: skip
    return create_token(engine, "admin", "admin")["secret"]


def serve(url: str, port: int) -> subprocess.Popen:
    env = dict(os.environ, TIMBEL_DATABASE_URL=url,
               # the benchmark measures the API, not its refusals
               TIMBEL_API_RATE_LIMIT="100000000/minute")  # fmt: skip
    server = subprocess.Popen(  # nosec B603: our own interpreter and module, fixed arguments
        [sys.executable, "-m", "uvicorn", "--factory", "timbel_dagster.api.app:create_app",
         "--host", "127.0.0.1", "--port", str(port), "--log-level", "warning", "--no-access-log"],
        env=env,
    )  # fmt: skip
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"http://127.0.0.1:{port}{BASELINE}", timeout=1).status_code == 200:
                return server
        except httpx.TransportError:
            time.sleep(0.2)
    server.terminate()
    raise RuntimeError("uvicorn did not answer within 60 s")


async def load(base: str, path: str, headers: dict, connections: int, seconds: float):
    """(requests, elapsed seconds, latencies in ms, non-200 answers)."""
    latencies: list[float] = []
    failures = 0
    limits = httpx.Limits(max_connections=connections, max_keepalive_connections=connections)
    async with httpx.AsyncClient(base_url=base, headers=headers, limits=limits) as client:
        stop = time.perf_counter() + seconds

        async def worker() -> None:
            nonlocal failures
            while time.perf_counter() < stop:
                began = time.perf_counter()
                response = await client.get(path)
                latencies.append((time.perf_counter() - began) * 1000)
                failures += response.status_code != 200

        started = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(connections)))
        elapsed = time.perf_counter() - started
    return len(latencies), elapsed, latencies, failures


def _percentile(values: list[float], q: int) -> float:
    return statistics.quantiles(values, n=100, method="inclusive")[q - 1]


def run(executions: int, connections: int, seconds: float) -> None:
    with scratch_postgres() as url:
        token = prepare(url, executions)
        port = _free_port()
        server = serve(url, port)
        try:
            base = f"http://127.0.0.1:{port}"
            auth = {"Authorization": f"Bearer {token}"}
            first = httpx.get(f"{base}/api/v1/executions?limit=1", headers=auth).json()
            one = first["items"][0]["id"]
            routes = [
                ("openapi", BASELINE, {}),
                ("me", "/api/v1/me", auth),
                ("executions_list", "/api/v1/executions?limit=50", auth),
                ("execution_one", f"/api/v1/executions/{one}", auth),
            ]
            baseline_rps = None
            for name, path, headers in routes:
                if httpx.get(base + path, headers=headers).status_code == 404:
                    print(f"# {path}: not served by this build, skipped", flush=True)
                    continue
                count, elapsed, latencies, failures = asyncio.run(
                    load(base, path, headers, connections, seconds)
                )
                rps = count / elapsed
                baseline_rps = baseline_rps or rps
                ratio = None if name == "openapi" else rps / baseline_rps
                report(f"api_{name}_requests_per_s", rps, "req/s", ratio, "openapi.json")
                report(f"api_{name}_p50_ms", _percentile(latencies, 50), "ms")
                report(f"api_{name}_p99_ms", _percentile(latencies, 99), "ms")
                if failures:
                    report(f"api_{name}_non_200", failures, "answers")
        finally:
            server.terminate()
            server.wait(timeout=30)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--executions", type=int, default=20_000)
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--seconds", type=float, default=10.0)
    args = parser.parse_args()
    run(args.executions, args.connections, args.seconds)


if __name__ == "__main__":
    main()
