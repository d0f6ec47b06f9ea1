"""Autoscaling templates: HPA and VPA manifests, validation, idempotent apply."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.deploy.conftest import TOKEN_ENV
from tests.test_cli import invoke
from timbel_dagster.deploy.autoscaling import AutoscalingError, manifests, policy, validate
from timbel_dagster.tenants.validate import ManifestInvalidError


@pytest.mark.parametrize(
    ("template", "kinds", "vpa_mode"),
    [
        ("web", ["HorizontalPodAutoscaler", "VerticalPodAutoscaler"], "Off"),
        ("worker", ["HorizontalPodAutoscaler", "VerticalPodAutoscaler"], "Initial"),
        ("batch", ["VerticalPodAutoscaler"], "Auto"),
    ],
)
def test_templates_validate(template: str, kinds: list[str], vpa_mode: str) -> None:
    found = manifests(policy(template), "shop", "shop-api")
    validate(found, "v1.29.4")
    assert [m["kind"] for m in found] == kinds
    assert found[-1]["spec"]["updatePolicy"]["updateMode"] == vpa_mode


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"min_replicas": 5, "max_replicas": 3}, r"1 <= min \(5\) <= max \(3\)"),
        ({"cpu_utilization": 150}, "cpu target must be 1-100 %"),
    ],
)
def test_bad_overrides(overrides: dict, message: str) -> None:
    with pytest.raises(AutoscalingError, match=message):
        policy("web", **overrides)
    with pytest.raises(AutoscalingError, match="unknown autoscaling template 'api'"):
        policy("api")


def test_an_invalid_hpa_is_refused() -> None:
    found = manifests(policy("web"), "shop", "shop-api")
    found[0]["spec"]["maxReplicas"] = "ten"
    with pytest.raises(ManifestInvalidError, match="HorizontalPodAutoscaler shop/shop-api"):
        validate(found, "1.29")


def test_cli_applies_once(fakes: dict, tmp_path: Path) -> None:
    clusters = tmp_path / "clusters.yaml"
    fake = fakes["prod-a"]
    clusters.write_text(
        f"clusters:\n  - {{name: prod-a, group: prod, api_url: '{fake.url}', "
        f"token_env: {TOKEN_ENV}}}\n"
    )
    env = {"TIMBEL_CLUSTERS_FILE": str(clusters), TOKEN_ENV: "t"}
    args = ["autoscale", "apply", "shop-api", "--template", "web", "--cluster", "prod-a"]
    first = invoke([*args, "--min", "3", "--json"], tmp_path, **env)
    assert first.returncode == 0, first.stderr
    assert [o["action"] for o in json.loads(first.stdout)["prod-a"]] == ["created", "created"]
    assert fake.get("HorizontalPodAutoscaler", "shop-api", "shop")["spec"]["minReplicas"] == 3
    again = invoke([*args, "--min", "3", "--json"], tmp_path, **env)
    assert [o["action"] for o in json.loads(again.stdout)["prod-a"]] == ["unchanged", "unchanged"]
    plain = invoke([*args, "--min", "3", "--dry-run"], tmp_path, **env).stdout.splitlines()
    assert [line.split() for line in [plain[0], *plain[2:]]] == [
        ["CLUSTER", "KIND", "OBJECT", "ACTION"],
        ["prod-a", "HorizontalPodAutoscaler", "shop/shop-api", "unchanged"],
        ["prod-a", "VerticalPodAutoscaler", "shop/shop-api", "unchanged"],
        ["dry", "run:", "nothing", "was", "changed"],
    ]
    bad = invoke([*args, "--min", "0"], tmp_path, **env)
    assert bad.returncode == 2 and "1 <= min (0) <= max (10)" in bad.stderr
