"""Vulnerability history from real recorded Trivy reports and deployments: per image, per
deployment (open at deploy time), per service, time to fix, the alert-rule fact
`critical_vulnerabilities_in_prod`, and `timbel scan history`."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import pandas as pd
import pytest
from click.testing import CliRunner

from tests.security.findings import CLEAN, T1, VULNERABLE, store
from timbel_dagster.cli.app import main
from timbel_dagster.notify.facts import FACTS
from timbel_dagster.security import history
from timbel_dagster.warehouse.engine import get_engine
from timbel_dagster.warehouse.schema.ids import stable_id
from timbel_dagster.warehouse.schema.models import Deployment
from timbel_dagster.warehouse.store.upsert import bulk_upsert

SHOP = "registry.example.com/shop/api:1.4.2"  # alpine 3.9: two CRITICAL, fixed at T3
SHOP_NEXT = "registry.example.com/shop/api:1.4.3"  # never scanned
PAY = "registry.example.com/pay/api:2.0.0"  # ubuntu 18.04: 4 MEDIUM, 1 LOW
H = dt.timedelta(hours=1)
T2, T3 = T1 + 24 * H, T1 + 48 * H
DEPLOYMENTS = [
    # external id, service, environment, image, status, started
    ("d1", "shop-api", "staging", SHOP, "success", T1 - H),  # before the first scan
    ("d2", "shop-api", "prod", SHOP, "success", T2),
    ("d3", "shop-api", "prod", SHOP_NEXT, "failed", T2 + 6 * H),  # failed: not running
    ("d4", "pay-api", "prod", PAY, "success", T2),
]


@pytest.fixture
def url(warehouse_url: str) -> str:
    store(warehouse_url, VULNERABLE, SHOP)
    store(warehouse_url, "ubuntu-1804.json", PAY)
    rows = [
        {"id": stable_id("deployments", "test", ext), "source": "test", "external_id": ext,
         "service": service, "environment": env, "cluster": None, "image": image,
         "version": None, "commit_from": None, "commit_to": None, "kind": "release",
         "status": status, "started_at": started, "completed_at": started + H,
         "triggered_by": None, "execution_id": None}
        for ext, service, env, image, status, started in DEPLOYMENTS
    ]  # fmt: skip
    with get_engine(warehouse_url).begin() as connection:
        bulk_upsert(connection, Deployment.__table__, rows, ["source", "external_id"])
    return warehouse_url


def fact(url: str, now: dt.datetime, **params: str) -> list:
    with get_engine(url).connect() as connection:
        return FACTS["critical_vulnerabilities_in_prod"](connection, params, now)


def test_images_deployments_and_the_prod_fact(url: str) -> None:
    engine = get_engine(url)
    assert fact(url, T2 + 12 * H) == [
        ({"service": "pay-api", "image": PAY}, 0.0),
        ({"service": "shop-api", "image": SHOP}, 2.0),  # d3 failed: SHOP still runs
    ]
    assert fact(url, T2 + 12 * H, window="1h") == [
        ({"service": "pay-api", "image": PAY}, 0.0),
        ({"service": "shop-api", "image": SHOP}, 0.0),  # first seen a day and a half before
    ]
    assert fact(url, T1) == []  # nothing was in prod yet
    store(url, CLEAN, SHOP, at=T3)  # musl upgraded in place
    assert fact(url, T3)[1] == ({"service": "shop-api", "image": SHOP}, 0.0)
    with engine.connect() as connection:
        scans = history.image_history(connection, SHOP)
        exposure = history.deployment_exposure(connection)
        prod = history.deployment_exposure(connection, environment="prod", since=T2 + H)
        services = history.service_history(connection, "shop-api")
        fixing = history.time_to_fix(connection)
    assert scans[["scanned_at", "critical", "new", "fixed"]].values.tolist() == [
        [scans["scanned_at"][0], 2, 2, 0],
        [scans["scanned_at"][1], 0, 0, 2],
    ]
    assert [t.to_pydatetime() for t in scans["scanned_at"]] == [T1, T3]
    assert exposure[["external_id", "scanned", "critical", "medium", "low"]].values.tolist() == [
        ["d1", False, 0, 0, 0],
        ["d2", True, 2, 0, 0],  # open when it went out, though fixed since
        ["d4", True, 0, 4, 1],
        ["d3", False, 0, 0, 0],
    ]
    assert prod["external_id"].tolist() == ["d3"]
    assert services[["image", "deployments", "environments", "critical"]].values.tolist() == [
        [SHOP, 2, "prod,staging", 2],
        [SHOP_NEXT, 1, "prod", 0],
    ]
    assert services["open_now_critical"].astype(object).tolist() == [0, pd.NA]
    critical = fixing.set_index("severity").loc["CRITICAL"]
    assert (critical["fixed"], critical["open"], critical["median_days"]) == (2, 0, 2.0)
    assert critical["p90_days"] == pytest.approx(2.0)
    assert fixing.set_index("severity").loc["MEDIUM", "open"] == 4
    assert fixing.set_index("severity")["median_days"].isna().tolist() == [
        False, True, True, True, True,
    ]  # fmt: skip


def test_an_empty_warehouse(warehouse_url: str) -> None:
    with get_engine(warehouse_url).connect() as connection:
        assert history.image_history(connection, SHOP).empty
        assert history.deployment_exposure(connection).empty
        assert history.service_history(connection).empty
        assert history.time_to_fix(connection)["fixed"].tolist() == [0] * 5
        assert FACTS["critical_vulnerabilities_in_prod"](connection, {}, T1) == []


def test_scan_history_cli(url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("TIMBEL_DATABASE_URL", url)

    def timbel(*args: str) -> dict:
        done = CliRunner().invoke(main, ["scan", "history", *args, "--json"])
        assert done.exit_code == 0, done.output
        return json.loads(done.stdout)

    image = timbel("--image", SHOP)
    assert image["image"] == SHOP
    assert [(s["critical"], s["new"]) for s in image["scans"]] == [(2, 2)]
    assert image["scans"][0]["scanned_at"].startswith("2026-11-02T09:00:00")
    service = timbel("--service", "pay-api")
    assert [d["medium"] for d in service["deployments"]] == [4]
    everything = timbel()
    assert [s["service"] for s in everything["services"]] == ["pay-api", "shop-api", "shop-api"]
    assert everything["time_to_fix"][0] == {
        "severity": "CRITICAL", "fixed": 0, "open": 2, "median_days": None, "p90_days": None,
    }  # fmt: skip
    assert [s["service"] for s in timbel("--limit", "1")["services"]] == ["pay-api"]
    text = CliRunner().invoke(main, ["scan", "history", "--service", "shop-api"])
    assert text.exit_code == 0 and text.stdout.startswith("images:\n")
    both = CliRunner().invoke(main, ["scan", "history", "--image", SHOP, "--service", "x"])
    assert both.exit_code == 2 and "give --image or --service, not both" in both.output


def _human(*args: str) -> list[str]:
    done = CliRunner().invoke(main, ["scan", "history", *args], env={"COLUMNS": "100"})
    assert done.exit_code == 0, done.output
    lines = done.stdout.splitlines()
    assert max(len(line) for line in lines) <= 100
    assert not {"<NA>", "NaN", "None", "NaT"} & set(done.stdout.split())
    return lines


def test_scan_history_for_people(url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Headed tables within 100 columns; by default each service's latest image, newest rows
    first, at most --limit rows per table; `-` where an image was never scanned."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("TIMBEL_DATABASE_URL", url)
    lines = _human()
    assert lines[0] == "services (the image each deployed last; --all: every image):"
    assert lines[1].split() == [
        "SERVICE", "TAG", "DEPLOYS", "ENVIRONMENTS", "LAST", "OPEN", "C/H/M/L", "NOW", "C/H",
    ]  # fmt: skip
    # shop-api deployed 1.4.3 last (never scanned: `-`); pay-api's image has 4 MEDIUM, 1 LOW.
    assert lines[3].split() == ["pay-api", "2.0.0", "1", "prod", "2026-11-03", "0/0/4/1", "0/0"]
    assert lines[4].split() == ["shop-api", "1.4.3", "1", "prod", "2026-11-03", "-", "-"]
    assert lines[5].startswith("C/H/M/L: critical/high/medium/low findings open")
    assert lines[lines.index("time to fix:") - 1] == ""
    every = _human("--all")
    assert [line.split()[:2] for line in every[3:6]] == [
        ["pay-api", "2.0.0"], ["shop-api", "1.4.3"], ["shop-api", "1.4.2"],
    ]  # fmt: skip
    assert every[5].split()[-2:] == ["2/0/0/0", "2/0"]  # two CRITICAL at deploy and now
    limited = _human("--limit", "1")
    assert limited[4] == "1 of 2 services: --limit N or --all for more"
    scans = _human("--image", SHOP)
    assert scans[0] == "scans:" and scans[1].split()[:3] == ["SCANNED", "ARTIFACT", "OPEN"]
    assert scans[3].split()[:2] == ["2026-11-02", "09:00"] and "2/0/0/0/0" in scans[3]
    deployments = _human("--service", "shop-api")
    at = deployments.index("deployments:")
    assert [line.split()[3] for line in deployments[at + 3 : at + 6]] == [
        "1.4.3", "1.4.2", "1.4.2",
    ]  # fmt: skip
    assert deployments[at + 5].split()[-2:] == ["no", "-"]  # d1: before the first scan
    both = CliRunner().invoke(main, ["scan", "history", "--limit", "2", "--all"])
    assert both.exit_code == 2 and "give --limit or --all, not both" in both.output
