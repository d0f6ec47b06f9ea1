"""The strongest registry test: a real `docker-registry` configured with a notifications
endpoint posts its events to the API served by uvicorn on loopback; an image pushed over
plain HTTP becomes one pending delivery, which `webhook_push_sensor` turns into the scan of
the pushed digest."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import dagster as dg
import pytest

from tests.api.test_serve import _free_port, _wait_for_port
from tests.api.webhooks.conftest import SECRETS, deliveries
from tests.conftest import missing_service
from tests.services.oci_registry import Registry, running_registry
from timbel_dagster.bindings.warehouse import WarehouseResource
from timbel_dagster.resources.registry import RegistryResource
from timbel_dagster.resources.sources import DeliverySourcesResource
from timbel_dagster.sensors.webhooks import webhook_push_sensor

ROOT = Path(__file__).resolve().parents[3]
DELIVERY_LIMIT = 60.0  # seconds: the registry sends from a queue, retrying with backoff


@pytest.fixture
def served_api(engine, warehouse_url: str, tmp_path: Path):
    """The API (registry webhook configured) served by uvicorn on a free loopback port."""
    port = _free_port()
    env = os.environ | {
        "TIMBEL_DATABASE_URL": warehouse_url,
        "TIMBEL_HOME": str(tmp_path),
        "REGISTRY_WEBHOOK_SECRET": SECRETS["registry_webhook_secret"],
        "PYTHONPATH": str(ROOT),
    }
    command = [sys.executable, "-m", "uvicorn", "--factory", "timbel_dagster.api.app:create_app",
               "--host", "127.0.0.1", "--port", str(port), "--log-level", "warning"]  # fmt: skip
    process = subprocess.Popen(command, env=env, stdout=subprocess.PIPE,
                               stderr=subprocess.STDOUT, text=True)  # fmt: skip
    try:
        _wait_for_port(process, port)
        yield f"http://127.0.0.1:{port}"
    finally:
        process.terminate()
        process.communicate(timeout=30)


@pytest.mark.slow
def test_a_push_to_a_real_registry_is_recorded_and_scanned(
    served_api: str, engine, warehouse_url: str, tmp_path: Path
) -> None:
    endpoint = {
        "name": "timbel",
        "url": f"{served_api}/api/v1/webhooks/registry",
        "headers": {"Authorization": [f"Bearer {SECRETS['registry_webhook_secret']}"]},
        "timeout": "5s",
        "threshold": 3,
        "backoff": "1s",
        "ignoredmediatypes": ["application/octet-stream"],
    }
    try:
        (tmp_path / "registry").mkdir()
        with running_registry(
            tmp_path / "registry", notifications={"endpoints": [endpoint]}
        ) as url:
            digest = Registry(url).push("team/api", "1.0")
            deadline = time.monotonic() + DELIVERY_LIMIT
            while not deliveries(engine, "registry"):
                assert time.monotonic() < deadline, "the registry's event never arrived"
                time.sleep(0.1)  # polling interval of the bounded wait, not a timing assertion
            [delivery] = deliveries(engine, "registry")
            assert (delivery["subject"], delivery["status"]) == ("team/api:1.0", "pending")

            sources = DeliverySourcesResource(mode="live", registry=RegistryResource(url=url))
            with dg.build_sensor_context(
                instance=dg.DagsterInstance.ephemeral(),
                resources={"sources": sources,
                           "warehouse": WarehouseResource(database_url=warehouse_url)},
            ) as sensor_context:  # fmt: skip
                result = webhook_push_sensor(sensor_context)
    except FileNotFoundError as error:
        missing_service(str(error))
    [request] = result.run_requests or []
    assert request.run_key == f"scan:{digest}"
    host = url.split("://", 1)[1]
    assert request.run_config["ops"]["scan_images"]["config"]["images"] == [
        f"{host}/team/api@{digest}"
    ]
    assert deliveries(engine, "registry")[0]["status"] == "taken"
