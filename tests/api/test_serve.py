"""`timbel api serve` as a real process: it listens on the port it is given and serves the
OpenAPI document over loopback."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

TIMBEL = str(Path(sys.executable).with_name("timbel"))
STARTUP_LIMIT = 60.0  # seconds: a loaded CI machine imports FastAPI and SQLAlchemy slowly


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _wait_for_port(process: subprocess.Popen, port: int) -> None:
    """Until the port accepts a connection; fails if the server exits or the limit passes."""
    deadline = time.monotonic() + STARTUP_LIMIT
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"`timbel api serve` exited with {process.returncode}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.1)  # polling interval of the bounded wait, not a timing assertion
    pytest.fail(f"`timbel api serve` did not listen on {port} within {STARTUP_LIMIT:.0f}s")


@pytest.mark.slow
@pytest.mark.parametrize("warehouse_backend", ["sqlite"])
def test_api_serve_answers_the_openapi_document_over_loopback(warehouse_url, tmp_path) -> None:
    port = _free_port()
    env = os.environ | {"TIMBEL_DATABASE_URL": warehouse_url, "TIMBEL_HOME": str(tmp_path)}
    process = subprocess.Popen(
        [TIMBEL, "api", "serve", "--host", "127.0.0.1", "--port", str(port)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        _wait_for_port(process, port)
        url = f"http://127.0.0.1:{port}/api/v1/openapi.json"
        with urllib.request.urlopen(url, timeout=10) as response:
            assert response.status == 200
            document = json.load(response)
        assert document["info"]["title"] == "Timbel API"
        assert "/api/v1/executions" in document["paths"]
    finally:
        process.terminate()
        output, _ = process.communicate(timeout=30)
    assert f"Timbel API on http://127.0.0.1:{port}/api/v1" in output


def test_api_serve_refuses_an_outdated_warehouse_in_one_line(tmp_path) -> None:
    empty = f"sqlite:///{tmp_path / 'empty.db'}"
    env = os.environ | {"TIMBEL_DATABASE_URL": empty, "TIMBEL_HOME": str(tmp_path)}
    completed = subprocess.run(
        [TIMBEL, "api", "serve", "--port", str(_free_port())],
        env=env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert completed.returncode != 0
    assert "timbel db upgrade" in completed.stderr
    assert "Traceback" not in completed.stderr
