"""A real Prometheus (Debian's package) on a loopback port, with history loaded by promtool."""

from __future__ import annotations

import datetime as dt
import shutil
import socket
import subprocess
import time
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

START = dt.datetime(2026, 11, 1, tzinfo=dt.UTC)
STEP_SECONDS = 15
SAMPLES = 2 * 24 * 3600 // STEP_SECONDS  # two days at 15 s: 11,520 samples per series


def sample_value(series: int, index: int) -> float:
    return round(series + (index % 100) / 10, 3)


def write_openmetrics(path: Path) -> None:
    """Two node_load1 series of two days, in the OpenMetrics text promtool reads."""
    start = int(START.timestamp())
    with path.open("w") as out:
        out.write("# HELP node_load1 1m load average.\n# TYPE node_load1 gauge\n")
        for series, instance in enumerate(("node-a", "node-b")):
            for index in range(SAMPLES):
                out.write(
                    f'node_load1{{cluster="seoul-prod-01",instance="{instance}"}} '
                    f"{sample_value(series, index)} {start + index * STEP_SECONDS}\n"
                )
        out.write("# EOF\n")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def running_prometheus(
    workdir: Path, write: Callable[[Path], None] = write_openmetrics
) -> Iterator[str]:
    """Load the history `write` produces into a TSDB, start Prometheus on it, yield its URL."""
    for binary in ("prometheus", "promtool"):
        if shutil.which(binary) is None:
            raise FileNotFoundError(f"{binary} is not installed (Debian package `prometheus`)")
    data = workdir / "tsdb"
    metrics = workdir / "history.om"
    write(metrics)
    subprocess.run(
        ["promtool", "tsdb", "create-blocks-from", "openmetrics", str(metrics), str(data)],
        check=True,
        capture_output=True,
        timeout=300,
    )
    config = workdir / "prometheus.yml"
    config.write_text("global:\n  scrape_interval: 15s\n")
    port = _free_port()
    server = subprocess.Popen(
        [
            "prometheus",
            f"--config.file={config}",
            f"--storage.tsdb.path={data}",
            f"--web.listen-address=127.0.0.1:{port}",
            "--storage.tsdb.retention.time=100y",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                with urllib.request.urlopen(f"{url}/-/ready", timeout=2) as response:
                    if response.status == 200:
                        break
            except OSError:
                if server.poll() is not None:
                    raise RuntimeError(server.stderr.read().decode()[-2000:]) from None
                if time.monotonic() > deadline:
                    raise TimeoutError("Prometheus did not become ready in 60 s") from None
                time.sleep(0.2)
        yield url
    finally:
        server.terminate()
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:  # busy compacting a large TSDB: nothing to keep
            server.kill()
            server.wait(timeout=30)
