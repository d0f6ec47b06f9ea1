"""The executor of the `ml_retrain` job, chosen by TIMBEL_ML_EXECUTOR when the code location
loads: `multiprocess` (default: the code location's own executor, steps as processes of the
run worker) or `k8s` (dagster-k8s's `k8s_job_executor`: each step its own Kubernetes Job,
so training the risk model or the cost forecast gets a pod sized for it instead of sharing
the run worker's). `k8s` needs the K8sRunLauncher (deploy/helm/values.yaml): the step pods
take its image, namespace, service account, secrets and run config, with the resources below
on top.
"""

from __future__ import annotations

import dagster as dg

ML_EXECUTORS = ("multiprocess", "k8s")
# At most this many ML steps of one run at a time; each asks for the resources below.
ML_STEP_MAX_CONCURRENT = 2
ML_STEP_RESOURCES = {
    "requests": {"cpu": "1", "memory": "2Gi"},
    "limits": {"memory": "8Gi"},
}


def ml_executor(kind: str) -> dg.ExecutorDefinition | None:
    """The ML job's executor for TIMBEL_ML_EXECUTOR `kind`; None: the code location's.

    Raises:
        ValueError: `kind` is none of ML_EXECUTORS.
    """
    if kind == "multiprocess":
        return None
    if kind != "k8s":
        raise ValueError(
            f"TIMBEL_ML_EXECUTOR must be one of {', '.join(ML_EXECUTORS)}, not {kind!r}"
        )
    # lazy: dagster_k8s imports the kubernetes client (about 4 s): only when it is chosen
    from dagster_k8s import k8s_job_executor

    return k8s_job_executor.configured(
        {
            "max_concurrent": ML_STEP_MAX_CONCURRENT,
            "step_k8s_config": {"container_config": {"resources": ML_STEP_RESOURCES}},
        },
        name="ml_k8s_executor",
    )
