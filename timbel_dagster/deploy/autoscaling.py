"""Autoscaling settings per workload from policy templates: an HPA (autoscaling/v2) and a
VPA (autoscaling.k8s.io/v1), validated before anything is applied.

Templates: `web` scales replicas on CPU (70 %) between 2 and 10, scales down slowly, and lets
the VPA only recommend (an HPA and a VPA acting on the same CPU signal fight each other);
`worker` scales 1-20 on CPU (80 %) and lets the VPA set memory requests when pods start;
`batch` has no HPA (a job's parallelism is its own) and a VPA that sizes pods itself.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

from timbel_dagster.tenants.validate import ManifestInvalidError, validate_manifest

VPA_MODES = ("Off", "Initial", "Recreate", "Auto")


class AutoscalingError(ValueError):
    """An autoscaling setting is wrong; the message names the workload and the setting."""


@dataclass(frozen=True)
class ScalingPolicy:
    template: str
    min_replicas: int | None  # None: no HPA
    max_replicas: int | None
    cpu_utilization: int | None  # target average utilisation of requests, percent
    scale_down_window_seconds: int
    vpa_mode: str
    vpa_resources: tuple[str, ...]


TEMPLATES = {
    "web": ScalingPolicy("web", 2, 10, 70, 300, "Off", ("cpu", "memory")),
    "worker": ScalingPolicy("worker", 1, 20, 80, 120, "Initial", ("memory",)),
    "batch": ScalingPolicy("batch", None, None, None, 0, "Auto", ("cpu", "memory")),
}


def policy(template: str, **overrides: Any) -> ScalingPolicy:
    """A template with overrides (`min_replicas=3`), checked."""
    if template not in TEMPLATES:
        raise AutoscalingError(
            f"unknown autoscaling template {template!r}; templates are {', '.join(TEMPLATES)}"
        )
    chosen = replace(TEMPLATES[template], **{k: v for k, v in overrides.items() if v is not None})
    if chosen.min_replicas is not None:
        if not 1 <= chosen.min_replicas <= (chosen.max_replicas or 0):
            raise AutoscalingError(
                f"replicas must satisfy 1 <= min ({chosen.min_replicas}) <= max "
                f"({chosen.max_replicas})"
            )
        if not 1 <= (chosen.cpu_utilization or 0) <= 100:
            raise AutoscalingError(f"cpu target must be 1-100 %, not {chosen.cpu_utilization}")
    if chosen.vpa_mode not in VPA_MODES:
        raise AutoscalingError(f"VPA mode must be one of {', '.join(VPA_MODES)}")
    return chosen


def manifests(
    chosen: ScalingPolicy, namespace: str, workload: str, kind: str = "Deployment"
) -> list[dict[str, Any]]:
    """The HPA (unless the template has none) and the VPA for one workload."""
    labels = {"app.kubernetes.io/managed-by": "timbel", "timbel.io/autoscaling": chosen.template}
    target = {"apiVersion": "apps/v1", "kind": kind, "name": workload}
    found: list[dict[str, Any]] = []
    if chosen.min_replicas is not None:
        found.append(
            {
                "apiVersion": "autoscaling/v2",
                "kind": "HorizontalPodAutoscaler",
                "metadata": {"name": workload, "namespace": namespace, "labels": labels},
                "spec": {
                    "scaleTargetRef": target,
                    "minReplicas": chosen.min_replicas,
                    "maxReplicas": chosen.max_replicas,
                    "metrics": [
                        {
                            "type": "Resource",
                            "resource": {
                                "name": "cpu",
                                "target": {
                                    "type": "Utilization",
                                    "averageUtilization": chosen.cpu_utilization,
                                },
                            },
                        }
                    ],
                    "behavior": {
                        "scaleDown": {
                            "stabilizationWindowSeconds": chosen.scale_down_window_seconds
                        }
                    },
                },
            }
        )
    found.append(
        {
            "apiVersion": "autoscaling.k8s.io/v1",
            "kind": "VerticalPodAutoscaler",
            "metadata": {"name": workload, "namespace": namespace, "labels": labels},
            "spec": {
                "targetRef": target,
                "updatePolicy": {"updateMode": chosen.vpa_mode},
                "resourcePolicy": {
                    "containerPolicies": [
                        {
                            "containerName": "*",
                            "controlledResources": list(chosen.vpa_resources),
                        }
                    ]
                },
            },
        }
    )
    return found


def validate(found: list[dict[str, Any]], kubernetes_version: str) -> None:
    """The HPA against Kubernetes' own schema (kubernetes-validate); the VPA, a custom
    resource that schema set does not include, against the fields its CRD requires."""

    for manifest in found:
        if manifest["kind"] != "VerticalPodAutoscaler":
            validate_manifest(manifest, kubernetes_version)
            continue
        spec, name = manifest.get("spec") or {}, manifest["metadata"]["name"]
        ref = spec.get("targetRef") or {}
        if not {"apiVersion", "kind", "name"} <= set(ref):
            raise ManifestInvalidError(
                f"VerticalPodAutoscaler {name}: spec.targetRef needs apiVersion, kind, name"
            )
        mode = (spec.get("updatePolicy") or {}).get("updateMode")
        if mode not in VPA_MODES:
            raise ManifestInvalidError(
                f"VerticalPodAutoscaler {name}: spec.updatePolicy.updateMode {mode!r} is not "
                f"one of {', '.join(VPA_MODES)}"
            )
