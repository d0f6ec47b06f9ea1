"""The production examples are not just prose: they load with the pinned Dagster family."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import dagster as dg
import pytest
import yaml
from sqlalchemy.engine import make_url

from timbel_dagster.tenants.validate import supported_versions, validate_manifest

ROOT = Path(__file__).resolve().parents[1]

_KUBECONFIG = """\
apiVersion: v1
kind: Config
clusters: [{name: c, cluster: {server: "https://127.0.0.1:1"}}]
users: [{name: u, user: {token: t}}]
contexts: [{name: x, context: {cluster: c, user: u}}]
current-context: x
"""


def outside_cluster(launcher: dict[str, Any], tmp_path: Path) -> dict[str, Any]:
    """A K8sRunLauncher config loaded from a kubeconfig instead of the in-cluster one (it
    connects lazily, so no cluster is needed to build it)."""
    (tmp_path / "kubeconfig").write_text(_KUBECONFIG)
    kubeconfig = str(tmp_path / "kubeconfig")
    return launcher | {"load_incluster_config": False, "kubeconfig_file": kubeconfig}


def test_instance_example_uses_postgres_storage_and_the_k8s_run_launcher(
    dagster_postgres_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = yaml.safe_load((ROOT / "dagster.yaml.example").read_text())
    config["run_launcher"]["config"] = outside_cluster(config["run_launcher"]["config"], tmp_path)
    (tmp_path / "dagster.yaml").write_text(yaml.safe_dump(config))

    url = make_url(dagster_postgres_url)
    for name, value in {
        "HOST": url.host,
        "PORT": str(url.port or 5432),
        "USER": url.username,
        "PASSWORD": url.password or "",
        "DB": url.database,
    }.items():
        monkeypatch.setenv(f"DAGSTER_PG_{name}", value)
    instance = dg.DagsterInstance.from_config(str(tmp_path))
    try:
        assert type(instance.run_storage).__name__ == "PostgresRunStorage"
        assert type(instance.event_log_storage).__name__ == "PostgresEventLogStorage"
        assert type(instance.run_launcher).__name__ == "K8sRunLauncher"
        assert instance.get_runs_count() == 0
    finally:
        instance.dispose()


def test_helm_values_run_the_code_location_with_the_k8s_run_launcher() -> None:
    values = yaml.safe_load((ROOT / "deploy" / "helm" / "values.yaml").read_text())
    [deployment] = values["dagster-user-deployments"]["deployments"]
    assert deployment["dagsterApiGrpcArgs"] == ["--module-name", "timbel_dagster.definitions"]
    assert values["runLauncher"]["type"] == "K8sRunLauncher"
    assert {"name": "timbel-settings"} in deployment["envSecrets"]


def test_dockerfile_serves_the_same_module() -> None:
    dockerfile = (ROOT / "deploy" / "Dockerfile").read_text()
    assert '"-m", "timbel_dagster.definitions"' in dockerfile
    assert "-c requirements.lock" in dockerfile  # the image gets the locked versions


def _yaml(name: str) -> dict:
    return yaml.safe_load((ROOT / "deploy" / "helm" / name).read_text())


def test_the_dagster_ui_is_reached_only_through_the_authenticating_proxy() -> None:
    values, proxy = _yaml("values.yaml"), _yaml("oauth2-proxy.values.yaml")
    webserver, ingress = values["dagsterWebserver"], values["ingress"]
    assert webserver["service"]["type"] == "ClusterIP"
    assert webserver["enableReadOnly"] is False  # no second, unprotected UI
    host = ingress["dagsterWebserver"]["host"]
    assert ingress["enabled"] and ingress["dagsterWebserver"]["tls"]["enabled"]
    annotations = ingress["annotations"]
    auth_url = annotations["nginx.ingress.kubernetes.io/auth-url"]
    assert auth_url.startswith("http://oauth2-proxy.") and auth_url.endswith("/oauth2/auth")
    assert annotations["nginx.ingress.kubernetes.io/auth-signin"].startswith(
        f"https://{host}/oauth2/start"
    )
    # The UI's ingress sends nothing around the proxy: no extra paths to other services.
    assert ingress["dagsterWebserver"]["precedingPaths"] == []
    assert ingress["dagsterWebserver"]["succeedingPaths"] == []
    # oauth2-proxy serves its sign-in pages on the same host, under /oauth2 only.
    assert proxy["ingress"]["hosts"] == [host] and proxy["ingress"]["path"] == "/oauth2"
    assert proxy["extraArgs"]["redirect-url"] == f"https://{host}/oauth2/callback"
    assert proxy["extraArgs"]["allowed-group"]  # not everyone with an account
    assert proxy["service"]["type"] == "ClusterIP"


def test_only_the_ingress_controller_reaches_the_webserver_pods() -> None:
    policy = _yaml("webserver-networkpolicy.yaml")
    newest = ".".join(map(str, supported_versions()[-1]))
    validate_manifest(policy, newest)  # strict: a misspelt field fails
    assert policy["spec"]["podSelector"]["matchLabels"] == {"component": "dagster-webserver"}
    assert policy["spec"]["policyTypes"] == ["Ingress"]
    [rule] = policy["spec"]["ingress"]
    [source] = rule["from"]
    assert "namespaceSelector" in source and "podSelector" in source  # both: one peer
    port = _yaml("values.yaml")["dagsterWebserver"]["service"]["port"]
    assert rule["ports"] == [{"protocol": "TCP", "port": port}]
