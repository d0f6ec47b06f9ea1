"""The `Settings` model: every setting Timbel reads (see the package docstring).

Its own module because pydantic-settings costs the code location about a fifth of its import
time: the package `timbel_dagster.settings` names `Settings` on first use (or when a type
checker reads it), so importing the settings, their URL helpers and their realm parser, as
storage and the resources do at load, does not build the model (import-time budget, DESIGN.md).
"""

from __future__ import annotations

import datetime as dt
import getpass
from pathlib import Path
from typing import Annotated, Literal

from pydantic import (
    AnyHttpUrl,
    Field,
    SecretStr,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from timbel_dagster.settings import (
    SAMPLE_MODE_MARKER,
    check_rate_limit_store,
    normalise_database_url,
    parse_realm_rules,
)
from timbel_dagster.settings.freshness import DEFAULT_HOURS, setting_names


def _comma_list(value: object) -> object:
    if isinstance(value, str):
        return [item.strip() for item in value.split(",") if item.strip()]
    return value


class Settings(BaseSettings):
    """Every setting Timbel reads. Secrets are `SecretStr` so they never reach a log."""

    model_config = SettingsConfigDict(
        env_file=".env",
        env_file_encoding="utf-8",
        extra="ignore",
        case_sensitive=False,
        env_ignore_empty=True,  # `VAR=` (as in .env.example) means unset, not ""
    )

    # --- Timbel itself -----------------------------------------------------------------
    timbel_home: Path = Field(Path(".timbel"), description="State directory (warehouse, Dagster).")
    timbel_database_url: str | None = Field(
        None, description="SQLAlchemy URL of the warehouse; SQLite in TIMBEL_HOME when unset."
    )
    timbel_sample_data: bool = Field(
        False,
        description="Bind the sample organisation instead of the real sources (default true "
        "where `timbel demo` has run: TIMBEL_HOME/sample-mode exists).",
    )
    timbel_sample_seed: int = Field(7, description="Seed of the sample organisation.")
    timbel_sample_end_date: dt.date | None = Field(
        None, description="Last day of the sample organisation's 90 days (default: today, UTC)."
    )
    timbel_history_start: dt.date = Field(
        dt.date(2010, 1, 1),
        description="First day of the daily and hourly partitions: the oldest history Timbel "
        "ingests (default early enough for any real server).",
    )
    timbel_user: str = Field(
        default_factory=getpass.getuser, description="Acting user recorded in the audit log."
    )
    timbel_log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    timbel_ml_executor: Literal["multiprocess", "k8s"] = Field(
        "multiprocess",
        description="Executor of the ml_retrain job: multiprocess (steps as processes of the "
        "run) or k8s (each step its own Kubernetes Job; needs the K8sRunLauncher).",
    )
    # Dagster's own variable: where its instance (runs, event logs) lives.
    dagster_home_dir: Path | None = Field(None, validation_alias="DAGSTER_HOME")

    # --- CI/CD servers -----------------------------------------------------------------
    jenkins_url: AnyHttpUrl | None = None
    jenkins_user: str | None = None
    jenkins_token: SecretStr | None = None
    # Comma-separated in the environment (NoDecode: not JSON).
    jenkins_jobs: Annotated[list[str], NoDecode] = Field(default_factory=list)
    jenkins_timeout_seconds: float = Field(30.0, gt=0)
    gitlab_url: AnyHttpUrl | None = None
    gitlab_token: SecretStr | None = None
    gitlab_projects: Annotated[list[str], NoDecode] = Field(default_factory=list)
    gitlab_max_requests_per_second: float = Field(10.0, gt=0)
    timbel_log_max_bytes_per_execution: int = Field(
        64 * 1024 * 1024,
        ge=1024,
        description="Most bytes of build log stored per execution (all of its streams); past "
        "it one 'truncated' line naming the CI server's URL is stored and reading stops.",
    )

    # --- Deployments read from CI (live mode, until Timbel's deploy job records them) ----
    timbel_deploy_stage_pattern: str = Field(
        r"(?i)deploy|release|rollout", description="Regex: CI stages that deploy."
    )
    timbel_production_pattern: str = Field(
        r"(?i)prod", description="Regex: deploy stages that deploy to production."
    )
    # Comma-separated in the environment (NoDecode: not JSON).
    timbel_git_repositories: Annotated[list[str], NoDecode] = Field(
        default_factory=list,
        description="Live mode: git repositories (local paths or clone URLs, comma-separated) "
        "whose commits cicd/commits reads; URLs are mirrored into TIMBEL_HOME/git.",
    )

    # --- Metrics and clusters ----------------------------------------------------------
    prometheus_url: AnyHttpUrl | None = None
    prometheus_cluster_label: str = "cluster"
    prometheus_cluster_name: str | None = Field(
        None,
        min_length=1,
        description="The cluster of a Prometheus whose series carry no PROMETHEUS_CLUSTER_LABEL "
        "(kube-prometheus-stack's default: one Prometheus per cluster). Unset: the one cluster "
        "TIMBEL_CLUSTERS_FILE lists, else 'default-cluster'. Where labelled and unlabelled "
        "series share a Prometheus, the unlabelled ones are collected under this name.",
    )
    prometheus_timeout_seconds: float = Field(30.0, gt=0)
    timbel_clusters_file: Path | None = Field(
        None, description="YAML list of clusters: name, group, kubeconfig context or URL + token."
    )
    timbel_metrics_step_seconds: int = Field(
        60, ge=15, le=900, description="Resolution of the hourly cluster-metrics range queries."
    )
    # OpenCost's default prices (configs/default.json), USD per unit-hour.
    timbel_price_cpu_core_hour: float = Field(0.031611, ge=0)
    timbel_price_memory_gib_hour: float = Field(0.004237, ge=0)
    timbel_price_storage_gib_hour: float = Field(0.00005479452, ge=0)
    timbel_grafana_dir: Path | None = Field(
        None, description="Where grafana_dashboards writes (default TIMBEL_HOME/grafana)."
    )

    # --- ML: deployment-risk advisor ---------------------------------------------------
    # The advice is the cheapest of approve, review and reject for the change's failure
    # probability, by these costs (ml/risk/model.DecisionCosts); the defaults give approve
    # below 0.2 and reject from 0.6.
    timbel_risk_cost_failed_deployment: float = Field(
        10.0, gt=0, description="What a failed deployment costs (any one unit: hours, money)."
    )
    timbel_risk_cost_review: float = Field(
        1.0, gt=0, description="What a review of a deployment costs, in the same unit."
    )
    timbel_risk_cost_held_back: float = Field(
        10.0,
        gt=0,
        description="What rejecting a change that would have been fine costs (it waits).",
    )
    timbel_risk_review_catch_rate: float = Field(
        0.5, gt=0, le=1, description="The share of failing deployments a review stops."
    )
    timbel_risk_approve_below: float | None = Field(
        None,
        gt=0,
        lt=1,
        description="Override: approve under this failure probability instead of the cut-off "
        "the costs give (set with TIMBEL_RISK_REJECT_FROM).",
    )
    timbel_risk_reject_from: float | None = Field(
        None,
        gt=0,
        lt=1,
        # Checked when unset too: an APPROVE_BELOW without it is refused.
        validate_default=True,
        description="Override: reject from this failure probability (set with "
        "TIMBEL_RISK_APPROVE_BELOW).",
    )
    timbel_risk_drift_auc_drop: float = Field(
        0.05, gt=0, lt=1, description="Retrain when AUC on recent deployments falls this much."
    )
    timbel_risk_drift_window_days: int = Field(
        30, ge=1, description="Deployments of the last N days make the drift check's AUC."
    )

    # --- Registry and scanning ---------------------------------------------------------
    harbor_registry: AnyHttpUrl | None = Field(
        None, description="Base URL of the OCI registry (Harbor, Nexus or any distribution v2)."
    )
    registry_username: str | None = None
    registry_password: SecretStr | None = None
    # Comma-separated in the environment (NoDecode: not JSON).
    timbel_registry_token_realms: Annotated[list[str], NoDecode] = Field(
        default_factory=list,
        description="Token services (hosts, meaning https, or URL prefixes) other than https "
        "on the registry's own host that may receive REGISTRY_USERNAME/REGISTRY_PASSWORD.",
    )
    trivy_binary: str = "trivy"
    trivy_cache_dir: Path | None = None
    trivy_timeout_seconds: float = Field(600.0, gt=0)
    trivy_offline: bool = False
    timbel_security_policy_file: Path | None = Field(
        None,
        description="Security policy YAML: which vulnerability findings block a deployment per "
        "environment group (the built-in policy when unset).",
    )
    sonarqube_url: AnyHttpUrl | None = Field(
        None, description="SonarQube server whose quality gates `timbel scan sonar import` reads."
    )
    sonarqube_token: SecretStr | None = Field(
        None, description="SonarQube user token, sent as the basic-auth user."
    )
    # Comma-separated in the environment (NoDecode: not JSON).
    timbel_analyze_repositories: Annotated[list[str], NoDecode] = Field(
        default_factory=list,
        description="Repositories (paths or git URLs, comma-separated) that security/components "
        "analyses.",
    )
    timbel_analyze_max_file_bytes: int = Field(
        8 * 1024 * 1024,
        ge=1024,
        description="Files larger than this are never read by the repository analysis.",
    )
    timbel_analyze_clone_timeout_seconds: float = Field(
        600.0, gt=0, description="The longest a git clone for the repository analysis may take."
    )

    # --- Notifications -----------------------------------------------------------------
    slack_webhook_url: SecretStr | None = None
    smtp_host: str | None = None
    smtp_port: int = Field(587, ge=1, le=65535)
    smtp_user: str | None = None
    smtp_password: SecretStr | None = None
    smtp_security: Literal["starttls", "ssl", "none"] = "starttls"
    smtp_from: str | None = None
    smtp_timeout_seconds: float = Field(20.0, gt=0)
    timbel_alert_rules_file: Path | None = Field(
        None, description="YAML alert rules, evaluated beside the rules stored in the warehouse."
    )
    timbel_templates_dir: Path | None = Field(
        None, description="Directory whose Jinja2 templates override the notification templates."
    )
    timbel_public_url: AnyHttpUrl | None = Field(
        None, description="Where users reach Timbel (unsubscribe links, buttons in messages)."
    )
    timbel_secret_key: SecretStr | None = Field(
        None,
        description="Signs unsubscribe links, and stored ML models through a key derived from "
        "it (unset: a key file in TIMBEL_HOME/keys); required for e-mail unsubscribe links and "
        "wherever the Dagster run worker, webserver and CLI run on different hosts.",
    )
    # At least 30: CAN-SPAM wants an opt-out to work for 30 days after the e-mail was sent.
    timbel_unsubscribe_link_days: int = Field(
        90,
        ge=30,
        le=3650,
        description="An e-mail's one-click unsubscribe link works this many days after it "
        "was sent, then shows a page saying it expired and how to unsubscribe otherwise.",
    )
    timbel_notify_max_attempts: int = Field(5, ge=1, le=20)

    # --- The API: OIDC bearer tokens and rate limits (docs/configuration.md) ---------------
    timbel_oidc_issuer: str | None = Field(
        None,
        description="OIDC issuer (`iss`) whose JWTs the API accepts as bearer tokens; unset: "
        "only `tbl_` API tokens.",
    )
    timbel_oidc_audience: str | None = Field(
        None, description="The `aud` the JWTs must carry (the API's client id at the issuer)."
    )
    timbel_oidc_jwks_url: str | None = Field(
        None,
        description="The issuer's JWKS (default: `jwks_uri` of "
        "{issuer}/.well-known/openid-configuration).",
    )
    timbel_oidc_user_claim: str = Field(
        "preferred_username",
        description="Claim naming the Timbel user when no user has the token's `sub` as "
        "oidc_subject (e.g. preferred_username or email).",
    )
    timbel_oidc_role_claim: str | None = Field(
        None,
        description="Claim carrying the role (a string or a list, e.g. timbel_role or groups); "
        "it may lower the user's role, never raise it. Unset: the users table's role.",
    )
    # Comma-separated `claim value=role` pairs (NoDecode: not JSON), e.g. `ops-team=operations`.
    timbel_oidc_role_map: Annotated[list[str], NoDecode] = Field(
        default_factory=list,
        description="Claim values mapped to roles, `group=role,...`; a role name maps to itself.",
    )
    # The approvals page's "Sign in with SSO" (Authorization Code flow with PKCE); its redirect
    # URI is TIMBEL_PUBLIC_URL/login/oidc/callback.
    timbel_oidc_client_id: str | None = Field(
        None,
        description="The approvals page's client id at the issuer; unset: the page signs in "
        "with API tokens only. Needs TIMBEL_OIDC_ISSUER and TIMBEL_PUBLIC_URL.",
    )
    timbel_oidc_client_secret: SecretStr | None = Field(
        None,
        description="The page's client secret (HTTP Basic at the token endpoint); unset: a "
        "public client (PKCE alone).",
    )
    timbel_oidc_scopes: str = Field(
        "openid profile email",
        description="Space-separated scopes the page asks for; must include openid.",
    )
    timbel_api_rate_limit: str = Field(
        "120/minute", description="Reads per token (`limits` notation: 120/minute, 10/second)."
    )
    timbel_api_write_rate_limit: str = Field(
        "30/minute", description="Writes per token (the policy table's write actions)."
    )
    timbel_api_rate_limit_storage: str = Field(
        "memory://",
        description="Where the rate limits count: memory:// (each API process on its own) or "
        "redis://HOST:PORT/DB (shared by every worker and replica; rediss:// for TLS).",
    )

    # --- Inbound webhooks (unset: that webhook answers 404) ------------------------------
    gitlab_webhook_secret: SecretStr | None = Field(
        None, description="The secret token GitLab sends as X-Gitlab-Token."
    )
    jenkins_webhook_secret: SecretStr | None = Field(
        None, description="The secret in the Notification plugin's URL (/webhooks/jenkins/SECRET)."
    )
    registry_webhook_secret: SecretStr | None = Field(
        None,
        description="The registry's notification endpoint sends `Authorization: Bearer SECRET`.",
    )
    slack_signing_secret: SecretStr | None = Field(
        None, description="The Slack app's signing secret (X-Slack-Signature, v0)."
    )

    # --- Deployments, tenants and the audit log ----------------------------------------
    timbel_approval_chains_file: Path | None = Field(
        None, description="YAML approval chains per environment group (default: built in)."
    )
    timbel_request_ttl_hours: float = Field(
        72.0, gt=0, description="A deployment request expires this long after it was made."
    )
    timbel_health_file: Path | None = Field(
        None, description="YAML health checks per service that trigger automatic rollback."
    )
    timbel_audit_retention_days: int = Field(
        365, ge=1, description="Audit events older than this are archived, then deleted."
    )
    timbel_audit_archive_dir: Path | None = Field(
        None, description="Where archived audit events go (default TIMBEL_HOME/audit-archive)."
    )
    timbel_audit_anchor_file: Path | None = Field(
        None,
        description="Append-only file of recorded audit-log head anchors, which `timbel audit "
        "verify` checks (default TIMBEL_HOME/audit-anchors.jsonl); keep it where the "
        "database's users cannot write.",
    )

    # --- Backups (docs/operations.md "Backups") -------------------------------------------
    timbel_backup_key: SecretStr | None = Field(
        None,
        description="Encrypts and authenticates backups: 32 random bytes, base64 (`openssl "
        "rand -base64 32`); `timbel backup` refuses to run without it. Keep a copy outside "
        "the machine: a backup cannot be read without its key.",
    )
    timbel_backup_dir: Path | None = Field(
        None,
        description="Where `timbel backup create` writes backups (default TIMBEL_HOME/backups).",
    )
    timbel_backup_url: str | None = Field(
        None,
        description="An S3-compatible store for backups, s3://BUCKET/PREFIX, in place of "
        "TIMBEL_BACKUP_DIR; credentials from boto3's chain (AWS_ACCESS_KEY_ID, AWS_PROFILE, a "
        "role).",
    )
    timbel_backup_s3_endpoint_url: str | None = Field(
        None, description="Endpoint of a non-AWS S3 store (MinIO, Ceph), e.g. https://minio:9000."
    )
    timbel_backup_s3_region: str | None = Field(
        None, description="Region of the S3 store (default: boto3's, AWS_DEFAULT_REGION)."
    )
    timbel_backup_dagster_storage: bool = Field(
        True,
        description="Also back up Dagster's own database when DAGSTER_HOME/dagster.yaml puts "
        "its storage in PostgreSQL.",
    )
    timbel_backup_keep_daily: int = Field(
        7, ge=0, description="Retention: the newest good backup of each of the last N days."
    )
    timbel_backup_keep_weekly: int = Field(
        4, ge=0, description="Retention: the newest good backup of each of the last N ISO weeks."
    )
    timbel_backup_keep_monthly: int = Field(
        12, ge=0, description="Retention: the newest good backup of each of the last N months."
    )
    timbel_backup_orphan_hours: float = Field(
        48,
        ge=1,
        description="`timbel backup prune` deletes a backup's data left without a manifest "
        "and without a catalogue row, and aborts an incomplete upload (S3 multipart, a "
        "directory's .partial file), once it started this long ago; younger, it may be a "
        "backup still being written. `timbel backup prune-bases` likewise deletes a base "
        "backup's `.ID.partial` copy with no writer running, which then stops holding back "
        "the WAL pruning. Longer than any backup runs.",
    )
    # Point-in-time recovery (docs/operations.md "Point-in-time recovery").
    timbel_base_backup_dir: Path | None = Field(
        None,
        description="Where `timbel backup base` writes base backups of the PostgreSQL cluster "
        "and `timbel backup pitr` finds them (default TIMBEL_HOME/base-backups).",
    )
    timbel_wal_archive_dir: Path | None = Field(
        None,
        description="The directory the server's archive_command copies WAL segments into, "
        "which `timbel backup pitr` replays (default TIMBEL_HOME/wal-archive).",
    )
    timbel_base_backup_keep: int = Field(
        4,
        ge=1,
        description="Base backups the `base_backup` job (and `timbel backup prune-bases`) keeps, "
        "the newest; archived WAL before the oldest kept one is removed.",
    )
    timbel_pg_bindir: Path | None = Field(
        None,
        description="Where PostgreSQL's programs are (pg_basebackup, pg_verifybackup, "
        "pg_waldump, pg_ctl); default: Debian's /usr/lib/postgresql/MAJOR/bin for the "
        "backup's major version, else PATH.",
    )
    # --- SLOs, error budgets and burn rates (docs/slos.md) ---------------------------------
    timbel_slo_file: Path | None = Field(
        None,
        description="YAML SLOs per service (availability and latency from Prometheus, pipeline "
        "success and duration from the warehouse); unset: no SLOs (in sample mode, the "
        "sample's), and the slo_status_every_5m schedule skips.",
    )
    # --- Freshness of the ingestion assets (settings/freshness.py; docs/operations.md) -------
    # Hours without a successful materialization after which an ingestion asset of the group
    # is WARN, then FAIL, in the Dagster UI; at FAIL the built-in ingestion-stale alert fires.
    timbel_freshness_ci_warn_hours: float = Field(
        DEFAULT_HOURS["ci"][0], ge=1 / 60, description="CI pipelines, executions, stages, logs."
    )
    timbel_freshness_ci_fail_hours: float = Field(DEFAULT_HOURS["ci"][1], ge=1 / 60)
    timbel_freshness_delivery_warn_hours: float = Field(
        DEFAULT_HOURS["delivery"][0],
        ge=1 / 60,
        description="Commits, deployments, incidents, users and clusters.",
    )
    timbel_freshness_delivery_fail_hours: float = Field(DEFAULT_HOURS["delivery"][1], ge=1 / 60)
    timbel_freshness_cluster_warn_hours: float = Field(
        DEFAULT_HOURS["cluster"][0], ge=1 / 60, description="Node and pod metrics, namespaces."
    )
    timbel_freshness_cluster_fail_hours: float = Field(DEFAULT_HOURS["cluster"][1], ge=1 / 60)
    timbel_freshness_inventory_warn_hours: float = Field(
        DEFAULT_HOURS["inventory"][0],
        ge=1 / 60,
        description="Registry images, scans, repository components, scaling history.",
    )
    timbel_freshness_inventory_fail_hours: float = Field(DEFAULT_HOURS["inventory"][1], ge=1 / 60)

    _split_lists = field_validator(
        "jenkins_jobs",
        "gitlab_projects",
        "timbel_analyze_repositories",
        "timbel_git_repositories",
        "timbel_registry_token_realms",
        "timbel_oidc_role_map",
        mode="before",
    )(_comma_list)

    @field_validator("timbel_backup_url")
    @classmethod
    def _check_backup_url(cls, value: str | None) -> str | None:
        from urllib.parse import urlsplit

        if value is None:
            return None
        parts = urlsplit(value.strip())
        if parts.scheme != "s3" or not parts.netloc or parts.query or parts.fragment:
            raise ValueError(
                "must be an S3 location like s3://bucket/prefix (a directory is TIMBEL_BACKUP_DIR)"
            )
        return value.strip()

    @field_validator("timbel_deploy_stage_pattern", "timbel_production_pattern")
    @classmethod
    def _check_pattern(cls, value: str) -> str:
        import re

        try:
            re.compile(value)
        except re.error as error:
            raise ValueError(f"not a regular expression: {error}") from None
        return value

    @field_validator("timbel_registry_token_realms")
    @classmethod
    def _check_token_realms(cls, value: list[str]) -> list[str]:
        parse_realm_rules(value)
        return value

    @field_validator("timbel_api_rate_limit", "timbel_api_write_rate_limit")
    @classmethod
    def _check_rate_limit(cls, value: str) -> str:
        # lazy: only the API needs `limits`; the settings are read everywhere
        from limits import parse

        try:
            parse(value)
        except ValueError:
            raise ValueError("not a rate limit: give COUNT/PERIOD, e.g. 120/minute") from None
        return value

    @field_validator("timbel_api_rate_limit_storage")
    @classmethod
    def _check_rate_limit_storage(cls, value: str) -> str:
        return check_rate_limit_store(value)

    @field_validator("timbel_risk_reject_from")
    @classmethod
    def _check_risk_thresholds(cls, value: float | None, info: ValidationInfo) -> float | None:
        approve = info.data.get("timbel_risk_approve_below")
        if (approve is None) != (value is None):
            raise ValueError(
                "set TIMBEL_RISK_APPROVE_BELOW and TIMBEL_RISK_REJECT_FROM together, or "
                "neither (the costs then give the cut-offs)"
            )
        if approve is not None and value is not None and value <= approve:
            raise ValueError(f"must be above TIMBEL_RISK_APPROVE_BELOW ({approve})")
        return value

    @field_validator(*(setting_names(group)[1] for group in DEFAULT_HOURS))
    @classmethod
    def _check_freshness_windows(cls, value: float, info: ValidationInfo) -> float:
        warn_name = info.field_name.replace("_fail_hours", "_warn_hours")
        warn = info.data.get(warn_name)
        if warn is not None and value <= warn:
            raise ValueError(f"must be more than {warn_name.upper()} ({warn:g})")
        return value

    @field_validator("timbel_history_start")
    @classmethod
    def _check_history_start(cls, value: dt.date) -> dt.date:
        if value > dt.datetime.now(dt.UTC).date():
            raise ValueError("must not be in the future")
        return value

    @field_validator("timbel_database_url")
    @classmethod
    def _check_database_url(cls, value: str | None) -> str | None:
        if value is None or not value.strip():
            return None
        return normalise_database_url(value)

    @model_validator(mode="after")
    def _remembered_sample_mode(self) -> Settings:
        if "timbel_sample_data" not in self.model_fields_set and self.sample_mode_marker.is_file():
            self.timbel_sample_data = True
        return self

    @property
    def sample_mode_marker(self) -> Path:
        """The file `timbel demo` leaves so that TIMBEL_SAMPLE_DATA defaults to true here."""
        return self.timbel_home / SAMPLE_MODE_MARKER

    @property
    def database_url(self) -> str:
        """The warehouse URL: the configured one, or SQLite inside TIMBEL_HOME."""
        if self.timbel_database_url:
            return self.timbel_database_url
        return f"sqlite:///{(self.timbel_home / 'warehouse.db').resolve()}"

    @property
    def audit_anchor_file(self) -> Path:
        return self.timbel_audit_anchor_file or self.timbel_home / "audit-anchors.jsonl"

    @property
    def backup_dir(self) -> Path:
        return self.timbel_backup_dir or self.timbel_home / "backups"

    @property
    def base_backup_dir(self) -> Path:
        return self.timbel_base_backup_dir or self.timbel_home / "base-backups"

    @property
    def wal_archive_dir(self) -> Path:
        return self.timbel_wal_archive_dir or self.timbel_home / "wal-archive"

    @property
    def dagster_home(self) -> Path:
        """The Dagster instance the CLI runs in: DAGSTER_HOME, else TIMBEL_HOME/dagster."""
        return (self.dagster_home_dir or self.timbel_home / "dagster").resolve()
