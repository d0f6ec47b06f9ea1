"""deploy/helm/values.yaml, checked by Dagster itself and by the Kubernetes schema.

The Dagster Helm chart turns the values into the instance's dagster.yaml
(templates/configmap-instance.yaml and helpers/instance/*.tpl). `chart_instance` below does
the same for the keys these values set, so Dagster's own config schemas check what the chart
would write: the instance schema, K8sRunLauncher's and QueuedRunCoordinator's. The run queue's
tag limits then go through Dagster's own counter (the one the queue daemon dequeues with), and
the Job the launcher writes for a run (and for an ML step under `k8s_job_executor`) is
rendered by dagster-k8s and validated with kubernetes-validate for a pinned Kubernetes version,
as is every manifest in deploy/helm. No tool beyond the locked packages is needed, so nothing
here skips.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import dagster as dg
import pytest
import yaml
from dagster._config import process_config
from dagster._core.instance.config import dagster_instance_config
from dagster._core.run_coordinator import QueuedRunCoordinator
from dagster._utils.tags import TagConcurrencyLimitsCounter

from tests.test_deployment_examples import outside_cluster
from timbel_dagster.definitions import build_definitions
from timbel_dagster.jobs import definitions as jobs
from timbel_dagster.jobs.backup import backup as backup_job
from timbel_dagster.jobs.base_backup import base_backup as base_backup_job
from timbel_dagster.jobs.executors import ML_STEP_RESOURCES, ml_executor
from timbel_dagster.sensors.grants import ROLLBACK_SERVICE_TAG
from timbel_dagster.settings import SettingsError, load_settings
from timbel_dagster.tenants.validate import validate_manifest

ROOT = Path(__file__).resolve().parents[1]
HELM = ROOT / "deploy" / "helm"
# The Kubernetes version the manifests are validated for (kubernetes-validate's schemas).
KUBERNETES_VERSION = "1.33"
RELEASE, NAMESPACE = "timbel", "timbel"
IMAGE = "registry.example.com/platform/timbel-dagster:0.1.0"


def _values() -> dict[str, Any]:
    return yaml.safe_load((HELM / "values.yaml").read_text())


def _postgres(values: dict[str, Any]) -> dict[str, Any]:
    pg = values["postgresql"]
    return {
        "postgres_db": {
            "username": pg["postgresqlUsername"],
            "password": {"env": "DAGSTER_PG_PASSWORD"},
            "hostname": pg["postgresqlHost"],
            "db_name": pg["postgresqlDatabase"],
            "port": pg["service"]["port"],
        }
    }


def _run_launcher(values: dict[str, Any]) -> dict[str, Any]:
    k8s = values["runLauncher"]["config"]["k8sRunLauncher"]
    run_k8s = k8s.get("runK8sConfig", {})
    names = {
        "containerConfig": "container_config",
        "podSpecConfig": "pod_spec_config",
        "podTemplateSpecMetadata": "pod_template_spec_metadata",
        "jobSpecConfig": "job_spec_config",
        "jobMetadata": "job_metadata",
    }
    config = {
        "load_incluster_config": k8s["loadInclusterConfig"],
        "job_namespace": k8s.get("jobNamespace", NAMESPACE),
        "image_pull_policy": k8s["imagePullPolicy"],
        "service_account_name": f"{RELEASE}-dagster",
        "dagster_home": "/opt/dagster/dagster_home",
        "instance_config_map": f"{RELEASE}-dagster-instance",
        "postgres_password_secret": values["global"]["postgresqlSecretName"],
        "env_secrets": [s["name"] for s in k8s.get("envSecrets", [])],
        "run_k8s_config": {names[key]: value for key, value in run_k8s.items()},
    }
    if k8s.get("failPodOnRunFailure"):
        config["fail_pod_on_run_failure"] = True
    return {"module": "dagster_k8s", "class": "K8sRunLauncher", "config": config}


def chart_instance(values: dict[str, Any]) -> dict[str, Any]:
    """The dagster.yaml the chart writes for these values (the keys they set)."""
    daemon = values["dagsterDaemon"]
    queued = daemon["runCoordinator"]["config"]["queuedRunCoordinator"]
    storage = {"module": "dagster_postgres", "config": _postgres(values)}
    monitoring = daemon["runMonitoring"]
    return {
        "run_storage": storage | {"class": "PostgresRunStorage"},
        "event_log_storage": storage | {"class": "PostgresEventLogStorage"},
        "schedule_storage": storage | {"class": "PostgresScheduleStorage"},
        "run_launcher": _run_launcher(values),
        "run_coordinator": {
            "module": "dagster._core.run_coordinator",
            "class": "QueuedRunCoordinator",
            "config": {
                "max_concurrent_runs": queued["maxConcurrentRuns"],
                "tag_concurrency_limits": queued["tagConcurrencyLimits"],
            },
        },
        "run_retries": {
            "enabled": daemon["runRetries"]["enabled"],
            "max_retries": daemon["runRetries"]["maxRetries"],
        },
        "run_monitoring": {
            "enabled": monitoring["enabled"],
            "start_timeout_seconds": monitoring["startTimeoutSeconds"],
            "poll_interval_seconds": monitoring["pollIntervalSeconds"],
        },
    }


def _processed(config_type: Any, config: dict[str, Any]) -> dict[str, Any]:
    result = process_config(config_type, config)
    assert result.success, [error.message for error in result.errors]
    return result.value


@pytest.fixture
def k8s_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DAGSTER_PG_PASSWORD", "secret")


def test_the_chart_s_instance_config_passes_dagster_s_own_schema(
    tmp_path: Path, k8s_env: None
) -> None:
    (tmp_path / "dagster.yaml").write_text(yaml.safe_dump(chart_instance(_values())))
    config, _ = dagster_instance_config(str(tmp_path))  # raises on any unknown or bad key
    assert config["run_retries"] == {"enabled": True, "max_retries": 2}
    assert config["run_monitoring"]["enabled"]


def test_dagster_builds_an_instance_with_the_chart_s_queue_retries_and_launcher(
    tmp_path: Path, k8s_env: None
) -> None:
    """The same config on SQLite (the PostgreSQL storage is tested with dagster.yaml.example
    in test_deployment_examples.py) and a kubeconfig instead of the in-cluster one."""
    config = chart_instance(_values())
    for storage in ("run_storage", "event_log_storage", "schedule_storage"):
        del config[storage]
    config["storage"] = {"sqlite": {"base_dir": str(tmp_path / "storage")}}
    config["run_launcher"]["config"] = outside_cluster(config["run_launcher"]["config"], tmp_path)
    (tmp_path / "dagster.yaml").write_text(yaml.safe_dump(config))
    instance = dg.DagsterInstance.from_config(str(tmp_path))
    try:
        assert type(instance.run_launcher).__name__ == "K8sRunLauncher"
        assert isinstance(instance.run_coordinator, QueuedRunCoordinator)
        queue = instance.get_concurrency_config().run_queue_config
        assert queue.max_concurrent_runs == 10 and len(queue.tag_concurrency_limits) == 4
        assert instance.run_retries_enabled and instance.run_retries_max_retries == 2
        assert instance.run_monitoring_enabled
        assert instance.run_monitoring_max_resume_run_attempts == 0
    finally:
        instance.dispose()


def test_the_run_launcher_config_is_k8s_run_launcher_s_and_builds_one(
    tmp_path: Path, k8s_env: None
) -> None:
    from dagster_k8s import K8sRunLauncher

    launcher = chart_instance(_values())["run_launcher"]["config"]
    value = _processed(K8sRunLauncher.config_type(), launcher)
    assert value["env_secrets"] == ["timbel-settings"] and value["load_incluster_config"]
    misspelt = process_config(K8sRunLauncher.config_type(), launcher | {"env_secret": ["x"]})
    assert not misspelt.success  # the schema is strict: the check would catch a typo
    built = _launcher(tmp_path, launcher)
    assert built.job_namespace == NAMESPACE and built.fail_pod_on_run_failure


def _launcher(tmp_path: Path, config: dict[str, Any]):
    from dagster_k8s import K8sRunLauncher

    outside = outside_cluster(config, tmp_path)
    return K8sRunLauncher.from_config_value(None, _processed(K8sRunLauncher.config_type(), outside))


def _coordinator(config: dict[str, Any]) -> QueuedRunCoordinator:
    value = _processed(QueuedRunCoordinator.config_type(), config)
    return QueuedRunCoordinator.from_config_value(None, value)


def _run(job: str, tags: dict[str, str]) -> dg.DagsterRun:
    return dg.DagsterRun(job_name=job, tags=tags)


def test_the_run_queue_runs_one_rollback_per_service_one_retrain_one_backup_of_each_kind() -> None:
    config = chart_instance(_values())["run_coordinator"]["config"]
    queue = _coordinator(config).get_run_queue_config()
    assert queue.max_concurrent_runs == 10

    def rollback(service: str) -> dg.DagsterRun:
        return _run("rollback", {ROLLBACK_SERVICE_TAG: service, "timbel/kind": "rollback"})

    # The queue daemon's own counter, with one rollback of payments-api in progress.
    counter = TagConcurrencyLimitsCounter(queue.tag_concurrency_limits, [rollback("payments")])
    assert counter.is_blocked(rollback("payments"))
    assert not counter.is_blocked(rollback("orders"))
    counter.update_counters_with_launched_item(rollback("orders"))
    assert counter.is_blocked(rollback("orders"))
    assert not counter.is_blocked(_run("deploy", {"timbel/kind": "deploy"}))
    retrain = _run("ml_retrain", dict(jobs.ML_RETRAIN["tags"]))
    counter.update_counters_with_launched_item(retrain)
    assert counter.is_blocked(_run("ml_retrain", dict(jobs.ML_RETRAIN["tags"])))

    # One backup and one base backup at a time, the one not blocking the other; the tags
    # are the jobs' own, so a Launchpad run queues behind a scheduled one too.
    counter = TagConcurrencyLimitsCounter(queue.tag_concurrency_limits, [])
    assert not counter.is_blocked(_run("backup", dict(backup_job.tags)))
    counter.update_counters_with_launched_item(_run("backup", dict(backup_job.tags)))
    assert counter.is_blocked(_run("backup", dict(backup_job.tags)))
    assert not counter.is_blocked(_run("base_backup", dict(base_backup_job.tags)))
    counter.update_counters_with_launched_item(_run("base_backup", dict(base_backup_job.tags)))
    assert counter.is_blocked(_run("base_backup", dict(base_backup_job.tags)))


def test_the_instance_example_has_the_chart_s_queue_limits_and_retries(k8s_env: None) -> None:
    example = yaml.safe_load((ROOT / "dagster.yaml.example").read_text())
    chart = chart_instance(_values())
    assert (
        _coordinator(example["run_coordinator"]["config"]).get_run_queue_config()
        == _coordinator(chart["run_coordinator"]["config"]).get_run_queue_config()
    )
    assert example["run_retries"] == chart["run_retries"]
    assert example["run_monitoring"]["max_resume_run_attempts"] == 0
    assert _values()["dagsterDaemon"]["runMonitoring"]["maxResumeRunAttempts"] == 0


def test_jobs_that_must_not_run_twice_blindly_opt_out_of_run_retries() -> None:
    defs = build_definitions()
    no_retry = {"deploy", "rollback", "provision_tenant", "delete_tenant", "trigger_build"}
    for job in defs.resolve_all_job_defs():
        retries = job.tags.get("dagster/max_retries")
        assert retries == ("0" if job.name in no_retry else None), job.name


def _manifest(job) -> dict[str, Any]:
    from kubernetes.client import ApiClient

    return ApiClient().sanitize_for_serialization(job)


def _render_job(launcher, run: dg.DagsterRun, component: str, extra: dict | None = None):
    """The Job dagster-k8s writes for `run` (a run worker, or a step with `extra` config)."""
    from dagster_k8s.container_context import K8sContainerContext
    from dagster_k8s.job import UserDefinedDagsterK8sConfig, construct_dagster_k8s_job

    context = K8sContainerContext.create_for_run(run, launcher, include_run_tags=True)
    if extra:
        step = UserDefinedDagsterK8sConfig.from_dict(extra)
        context = context.merge(K8sContainerContext(run_k8s_config=step))
    name = f"dagster-{component.replace('_', '-')}-{run.run_id[:8]}"
    return construct_dagster_k8s_job(
        job_config=context.get_k8s_job_config(job_image=IMAGE, run_launcher=launcher),
        args=["dagster", "api", "execute_run", "{}"],
        job_name=name,
        pod_name=name,
        component=component,
        user_defined_k8s_config=context.run_k8s_config,
        labels={"dagster/job": run.job_name, "dagster/run-id": run.run_id},
    )


def test_the_jobs_the_launcher_and_the_ml_executor_write_are_valid_kubernetes(
    tmp_path: Path, k8s_env: None
) -> None:
    launcher = _launcher(tmp_path, chart_instance(_values())["run_launcher"]["config"])
    run = _run("rollback", {ROLLBACK_SERVICE_TAG: "payments"})
    worker = _manifest(_render_job(launcher, run, "run_worker"))
    validate_manifest(worker, KUBERNETES_VERSION)  # strict: an unknown field fails
    pod = worker["spec"]["template"]["spec"]
    [container] = pod["containers"]
    assert container["image"] == IMAGE
    assert container["resources"]["limits"] == {"memory": "4Gi"}
    assert container["securityContext"]["runAsNonRoot"] is True
    assert worker["spec"]["backoffLimit"] == 0  # Dagster retries runs, never the Job
    assert {"secretRef": {"name": "timbel-settings"}} in container["envFrom"]

    step_config = {"container_config": {"resources": ML_STEP_RESOURCES}}
    step = _manifest(_render_job(launcher, _run("ml_retrain", {}), "step_worker", step_config))
    validate_manifest(step, KUBERNETES_VERSION)
    [container] = step["spec"]["template"]["spec"]["containers"]
    assert container["resources"] == ML_STEP_RESOURCES
    assert container["securityContext"]["allowPrivilegeEscalation"] is False


def test_every_manifest_in_deploy_helm_is_valid_kubernetes() -> None:
    manifests = []
    for path in sorted(HELM.glob("*.yaml")):
        for document in yaml.safe_load_all(path.read_text()):
            if isinstance(document, dict) and "apiVersion" in document:  # not a values file
                manifests.append((path.name, document))
    assert manifests, "deploy/helm holds no manifest"
    for name, manifest in manifests:
        assert validate_manifest(manifest, KUBERNETES_VERSION) == KUBERNETES_VERSION, name


def test_the_ml_executor_is_chosen_by_setting_and_defaults_to_the_location_s(
    tmp_path: Path,
) -> None:
    assert ml_executor("multiprocess") is None
    local = build_definitions(settings=load_settings(timbel_home=tmp_path))
    assert local.resolve_job_def("ml_retrain").executor_def.name == "multiprocess"
    on_k8s = build_definitions(
        settings=load_settings(timbel_home=tmp_path, timbel_ml_executor="k8s")
    )
    job = on_k8s.resolve_job_def("ml_retrain")
    assert job.executor_def.name == "ml_k8s_executor"
    assert job.tags["timbel/kind"] == "ml_retrain"
    assert on_k8s.resolve_job_def("delivery_ingestion").executor_def.name == "multiprocess"
    with pytest.raises(SettingsError, match="TIMBEL_ML_EXECUTOR"):
        load_settings(timbel_ml_executor="celery")
    with pytest.raises(ValueError, match="TIMBEL_ML_EXECUTOR must be one of"):
        ml_executor("celery")
