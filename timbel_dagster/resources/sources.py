"""Which delivery sources a run reads: the sample organisation or the configured servers."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any, Protocol

import dagster as dg
from pydantic import Field

from timbel_dagster.resources.clusters_file import ClustersFileSource, load_clusters
from timbel_dagster.resources.delivery import SourceNotConfiguredError
from timbel_dagster.resources.derived import CIDerivedHistory, StoredStages
from timbel_dagster.resources.gitlab.source import GitLabResource
from timbel_dagster.resources.jenkins.source import JenkinsResource
from timbel_dagster.resources.kubernetes import KubernetesResource
from timbel_dagster.resources.prometheus import PrometheusResource
from timbel_dagster.resources.registry import RegistryResource
from timbel_dagster.resources.sample.metrics import SampleMetricsSource
from timbel_dagster.resources.sample.organisation import SAMPLE_SOURCE
from timbel_dagster.resources.sample.registry import SampleRegistry
from timbel_dagster.resources.sample.source import SampleSource
from timbel_dagster.resources.scaling import KubernetesScaling, SampleScaling
from timbel_dagster.resources.trivy import TrivyResource
from timbel_dagster.settings import get_settings

if TYPE_CHECKING:
    from pathlib import Path

    from timbel_dagster.records.trivy import ScanReport
    from timbel_dagster.resources.cluster_metrics import ClusterMetricsSource
    from timbel_dagster.resources.delivery import CISource, DeliveryHistorySource
    from timbel_dagster.resources.registry_records import Image
    from timbel_dagster.resources.sample.registry import SampleRegistry
    from timbel_dagster.resources.sample.source import SampleSource

_SAMPLE_HINT = "or set TIMBEL_SAMPLE_DATA=true to use the sample organisation"
TRIVY_SOURCE = "trivy"  # what rows of real scans say in `source` (scan_run.SOURCE)


class ImageSource(Protocol):
    """Where container images are listed: `RegistryResource` or the sample's registry."""

    @property
    def name(self) -> str:
        """What the rows of its images say in their `source` column."""
        ...

    @property
    def host(self) -> str: ...

    def images(self, details: bool = True) -> Iterator[Image]:
        """Every tag listed; `details=False` may leave `created` and `size` out (cheaper)."""
        ...


class ImageScanner(Protocol):
    """What scans an image: `TrivyResource` or the sample's scanner."""

    def scan_image(self, ref: str) -> ScanReport: ...


class DeliverySourcesResource(dg.ConfigurableResource):
    """Binds each kind of delivery source to its implementation.

    `mode` is `sample` (the seeded sample organisation, every row `source='sample'`) or
    `live` (the servers named in the settings). Unset, TIMBEL_SAMPLE_DATA decides. The sample
    is never a fallback: in live mode a source that is not configured is an error.
    """

    mode: str | None = None  # sample | live
    sample_seed: int | None = None
    sample_end_date: str | None = None  # ISO date; default TIMBEL_SAMPLE_END_DATE or today
    clusters_file: str | None = None  # default TIMBEL_CLUSTERS_FILE
    history_days: int = 400  # live mode: how far back deployments are derived again
    systems: list[str] | None = None  # in live mode, only these CI systems (default: all)
    jenkins: JenkinsResource = Field(default_factory=JenkinsResource)
    gitlab: GitLabResource = Field(default_factory=GitLabResource)
    prometheus: PrometheusResource = Field(default_factory=PrometheusResource)
    registry: RegistryResource = Field(default_factory=RegistryResource)
    trivy: TrivyResource = Field(default_factory=TrivyResource)
    sample_tags_per_repository: int = 5  # sample mode: the newest tags listed per repository
    git_repositories: list[str] | None = None  # live mode: default TIMBEL_GIT_REPOSITORIES
    git_home: str | None = None  # where clones of URLs go (`<git_home>/git/`): TIMBEL_HOME

    def _mode(self) -> str:
        if self.mode:
            if self.mode not in ("sample", "live"):
                raise ValueError(f"sources.mode must be 'sample' or 'live', not {self.mode!r}")
            return self.mode

        return "sample" if get_settings().timbel_sample_data else "live"

    def is_sample(self) -> bool:
        """Whether runs read the sample organisation (else the configured servers)."""
        return self._mode() == "sample"

    def git_sources(self) -> tuple[list[str], Path]:
        """Live mode: the repositories (paths or clone URLs) whose commits are read, and the
        directory clones go under (TIMBEL_GIT_REPOSITORIES and TIMBEL_HOME unless set here)."""
        from pathlib import Path

        settings = get_settings()
        entries = (
            self.git_repositories
            if self.git_repositories is not None
            else settings.timbel_git_repositories
        )
        return list(entries), Path(self.git_home) if self.git_home else settings.timbel_home

    def sample(self) -> SampleSource:
        settings = get_settings()
        end = (
            dt.date.fromisoformat(self.sample_end_date)
            if self.sample_end_date
            else settings.timbel_sample_end_date or dt.datetime.now(dt.UTC).date()
        )
        seed = self.sample_seed if self.sample_seed is not None else settings.timbel_sample_seed
        return SampleSource(end_date=end, seed=seed)

    def window(self) -> tuple[dt.datetime, dt.datetime]:
        """The [since, until) window an ingestion run reads."""
        if self._mode() == "sample":
            return self.sample().window
        now = dt.datetime.now(dt.UTC)
        return now - dt.timedelta(days=self.history_days), now

    def ci_sources(self, only: list[str] | None = None) -> list[CISource]:
        """The CI sources a run reads: the sample, or every configured server (`only`, or the
        resource's `systems`, narrows them down)."""
        if self._mode() == "sample":
            return [self.sample()]
        wanted = set(only or self.systems or ("jenkins", "gitlab"))
        found: list[CISource] = []
        if "jenkins" in wanted and self.jenkins.configured():
            found.append(self.jenkins.source())
        if "gitlab" in wanted and self.gitlab.configured():
            found.append(self.gitlab.source())
        if not found:
            names = " or ".join(f"{s.upper()}_URL" for s in sorted(wanted, reverse=True))
            raise SourceNotConfiguredError(
                f"no CI/CD server is configured: set {names}, {_SAMPLE_HINT}"
            )
        return found

    def history_sources(self, stored_stages: StoredStages) -> list[DeliveryHistorySource]:
        """Where people, clusters, deployments and incidents come from: the sample, or in live
        mode the deployments found in each configured CI server's stored executions (read
        with `stored_stages`: WarehouseResource.stored_stages)."""
        if self._mode() == "sample":
            return [self.sample()]

        settings = get_settings()
        systems = [
            name
            for name, resource in (("jenkins", self.jenkins), ("gitlab", self.gitlab))
            if resource.configured()
        ]
        found: list[DeliveryHistorySource] = []
        clusters_file = self.clusters_file or settings.timbel_clusters_file
        if clusters_file:
            from pathlib import Path

            found.append(ClustersFileSource(Path(clusters_file)))
        if not systems and not found:
            raise SourceNotConfiguredError(
                "no deployment history is configured: deployments are read from the CI servers "
                f"(set JENKINS_URL or GITLAB_URL), {_SAMPLE_HINT}"
            )
        return found + [
            CIDerivedHistory(
                stored_stages,
                system,
                settings.timbel_deploy_stage_pattern,
                settings.timbel_production_pattern,
            )
            for system in systems
        ]

    def metrics_source(self) -> ClusterMetricsSource:
        """Where cluster usage comes from: the sample organisation, or in live mode the
        kube-prometheus series of PROMETHEUS_URL (clusters from TIMBEL_CLUSTERS_FILE when
        set, else every value of the cluster label Prometheus knows; series without that label
        are one cluster, named by PROMETHEUS_CLUSTER_NAME or the clusters file)."""

        settings = get_settings()
        if self._mode() == "sample":
            seed = self.sample_seed if self.sample_seed is not None else settings.timbel_sample_seed
            return SampleMetricsSource(seed)

        clusters = None
        clusters_file = self.clusters_file or settings.timbel_clusters_file
        if clusters_file:
            from pathlib import Path

            clusters = [c.name for c in load_clusters(Path(clusters_file))]
        try:
            client = self.prometheus.client()
        except SourceNotConfiguredError:
            raise SourceNotConfiguredError(
                f"cluster metrics need Prometheus: set PROMETHEUS_URL, {_SAMPLE_HINT}"
            ) from None
        # lazy: kube_prometheus adds ~10 ms to loading the code location
        from timbel_dagster.resources.kube_prometheus import KubePrometheusSource

        return KubePrometheusSource(
            client,
            cluster_label=settings.prometheus_cluster_label,
            step=dt.timedelta(seconds=settings.timbel_metrics_step_seconds),
            clusters=clusters,
            cluster_name=settings.prometheus_cluster_name,
        )

    def scaling_source(self) -> Any:
        """Autoscaling history: the sample's, or every configured cluster's."""
        if self._mode() == "sample":
            # The sample's last day, as the demo's cluster metrics: the same rows each run.
            return SampleScaling(self.sample().end_date)

        return KubernetesScaling(KubernetesResource(clusters_file=self.clusters_file))

    def _sample_registry(self) -> SampleRegistry:
        return SampleRegistry(self.sample(), self.sample_tags_per_repository)

    def image_source(self) -> ImageSource:
        """Where container images come from: the images the sample's builds pushed, or in
        live mode the OCI registry of HARBOR_REGISTRY."""
        if self._mode() == "sample":
            return self._sample_registry()
        if not self.registry.configured():
            raise SourceNotConfiguredError(
                "the OCI registry is not configured: set HARBOR_REGISTRY (and "
                f"REGISTRY_USERNAME, REGISTRY_PASSWORD if it needs credentials), {_SAMPLE_HINT}"
            )
        return self.registry

    def scanner(self) -> ImageScanner:
        """What scans images: the sample's scanner (reports of the sample's images only), or
        in live mode Trivy."""
        if self._mode() == "sample":
            # lazy: the sample scanner adds ~13 ms to loading the code location
            from timbel_dagster.resources.sample.scanner import SampleScanner

            return SampleScanner(self._sample_registry())
        return self.trivy

    def scanner_name(self) -> str:
        """What rows stored from `scanner()`'s reports say in their `source` column."""
        return SAMPLE_SOURCE if self._mode() == "sample" else TRIVY_SOURCE
