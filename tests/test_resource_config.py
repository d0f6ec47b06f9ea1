"""The code location configures every resource from the settings, so the Dagster UI shows the
configuration: plain values as they are, secrets only as the names of their variables."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator

import dagster as dg
import pytest
from dagster._core.remote_representation.external_data import (
    RepositorySnap,
    ResourceConfigEnvVarSnap,
    ResourceSnap,
)

from tests.test_definitions import HEAVY as LOAD_FREE
from timbel_dagster import settings as settings_module
from timbel_dagster.bindings.configured import configured_resources
from timbel_dagster.definitions import build_definitions, defs
from timbel_dagster.settings import get_settings, load_settings

SECRETS = {
    "JENKINS_TOKEN": "jenkins-token-4f1c",
    "GITLAB_TOKEN": "gitlab-token-9a2e",
    "REGISTRY_PASSWORD": "registry-password-77d0",
    "SLACK_WEBHOOK_URL": "https://hooks.slack.com/services/T0/B0/slack-token-c3b8",
    "SMTP_PASSWORD": "smtp-password-e5a1",
    "TIMBEL_SECRET_KEY": "signing-key-0b6f",
    "TIMBEL_DATABASE_URL": "postgresql://timbel:db-password-21fd@127.0.0.1:5432/timbel",
}
PLAIN = {
    "JENKINS_URL": "https://jenkins.example/",
    "JENKINS_USER": "timbel-bot",
    "JENKINS_JOBS": "team-a/api",
    "GITLAB_URL": "https://gitlab.example/",
    "GITLAB_PROJECTS": "team-a/web",
    "HARBOR_REGISTRY": "https://registry.example/",
    "REGISTRY_USERNAME": "robot$timbel",
    "PROMETHEUS_URL": "https://prometheus.example/",
    "SMTP_HOST": "smtp.example",
    "SMTP_USER": "mailer",
    "SMTP_FROM": "timbel@example.com",
    "TIMBEL_SAMPLE_DATA": "false",
}
# What loading leaves to the runs; the settings model itself (pydantic-settings) loads in defs().
HEAVY = tuple(m for m in LOAD_FREE if m != "pydantic_settings")
# The secret part of each value above: none may appear anywhere in the snapshot.
SECRET_PARTS = [
    "jenkins-token-4f1c",
    "gitlab-token-9a2e",
    "registry-password-77d0",
    "slack-token-c3b8",
    "smtp-password-e5a1",
    "signing-key-0b6f",
    "db-password-21fd",
]


@pytest.fixture(autouse=True)
def environment(monkeypatch: pytest.MonkeyPatch, tmp_path) -> Iterator[None]:
    """Only the settings named here, read where there is no `.env` file."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("TIMBEL_HOME", str(tmp_path / "home"))
    for name in settings_module.Settings.model_fields:
        monkeypatch.delenv(name.upper(), raising=False)
    for name, value in {**SECRETS, **PLAIN}.items():
        monkeypatch.setenv(name, value)
    get_settings.cache_clear()
    yield
    get_settings.cache_clear()


def _snapshot(definitions: dg.Definitions) -> RepositorySnap:
    """What the UI reads: the repository snapshot the code server sends the webserver."""
    return RepositorySnap.from_def(definitions.get_repository_def(), defer_snapshots=True)


def _resource_snaps(definitions: dg.Definitions) -> tuple[dict[str, ResourceSnap], str]:
    """The snapshot's resources by key, and the whole snapshot serialized."""
    snap = _snapshot(definitions)
    return {r.name: r for r in snap.resources or []}, dg.serialize_value(snap)


def _value(resource: ResourceSnap, field: str) -> object:
    shown = resource.configured_values[field]
    return shown if isinstance(shown, ResourceConfigEnvVarSnap) else json.loads(shown)


def test_the_loaded_location_shows_each_resource_config_and_secrets_only_by_name() -> None:
    assert all(part in value for part, value in zip(SECRET_PARTS, SECRETS.values(), strict=True))
    snap = _snapshot(defs())
    serialized = dg.serialize_value(snap)
    resources = {r.name: r for r in snap.resources or []}

    for part in SECRET_PARTS:
        assert part not in serialized
    # Dagster's environment-variable page lists each secret with the resources that use it.
    assert set(SECRETS) <= set(snap.utilized_env_vars or {})
    env = ResourceConfigEnvVarSnap
    assert _value(resources["jenkins"], "token") == env(name="JENKINS_TOKEN")
    assert _value(resources["jenkins"], "url") == "https://jenkins.example/"
    assert _value(resources["jenkins"], "user") == "timbel-bot"
    assert _value(resources["jenkins"], "jobs") == ["team-a/api"]
    assert _value(resources["jenkins"], "timeout_seconds") == 30.0
    assert _value(resources["gitlab"], "token") == env(name="GITLAB_TOKEN")
    assert _value(resources["gitlab"], "projects") == ["team-a/web"]
    assert _value(resources["prometheus"], "url") == "https://prometheus.example/"
    assert _value(resources["warehouse"], "database_url") == env(name="TIMBEL_DATABASE_URL")
    notifier = resources["notifier"]
    assert _value(notifier, "database_url") == env(name="TIMBEL_DATABASE_URL")
    assert _value(notifier, "slack_webhook_url") == env(name="SLACK_WEBHOOK_URL")
    assert _value(notifier, "smtp_password") == env(name="SMTP_PASSWORD")
    assert _value(notifier, "secret_key") == env(name="TIMBEL_SECRET_KEY")
    assert (_value(notifier, "smtp_host"), _value(notifier, "smtp_user")) == (
        "smtp.example",
        "mailer",
    )
    sources = resources["sources"]
    assert _value(sources, "mode") == "live"
    # The delivery sources hold the top-level Jenkins, GitLab and Prometheus, shown once.
    for key in ("jenkins", "gitlab", "prometheus"):
        nested = sources.nested_resources[key]
        assert (nested.type.value, nested.name) == ("TOP_LEVEL", key)
    # The registry is nested in the sources only: its password is still a variable's name.
    assert "sources" in {c.name for c in snap.utilized_env_vars["REGISTRY_PASSWORD"]}


def test_a_database_url_without_a_password_is_shown_as_it_is(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("TIMBEL_DATABASE_URL", "postgresql://timbel@db.internal:5432/warehouse")
    resources, _ = _resource_snaps(build_definitions(settings=load_settings()))
    shown = "postgresql+psycopg://timbel@db.internal:5432/warehouse"
    assert _value(resources["warehouse"], "database_url") == shown


def test_the_run_reads_each_secret_from_its_variable_when_it_starts(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    jenkins = configured_resources(load_settings())["jenkins"]
    monkeypatch.setenv("JENKINS_TOKEN", "rotated-after-the-location-loaded")
    with dg.build_resources({"jenkins": jenkins}) as built:
        assert built.jenkins.token == "rotated-after-the-location-loaded"
    # Unset where the run starts, Dagster fails the run naming the variable.
    monkeypatch.delenv("JENKINS_TOKEN")
    with (
        pytest.raises(dg.DagsterInvalidConfigError, match="JENKINS_TOKEN"),
        dg.build_resources({"jenkins": jenkins}),
    ):
        pass


def test_a_secret_only_in_the_env_file_is_left_to_the_settings_at_run_time(
    monkeypatch: pytest.MonkeyPatch, tmp_path
) -> None:
    monkeypatch.delenv("SMTP_PASSWORD")
    (tmp_path / ".env").write_text("SMTP_PASSWORD=from-the-env-file-83c2\n")
    settings = load_settings()
    definitions = build_definitions(settings=settings)
    resources, serialized = _resource_snaps(definitions)

    assert "from-the-env-file-83c2" not in serialized
    assert _value(resources["notifier"], "smtp_password") is None
    # The run's notifier reads the password from the settings, which read the `.env` file.
    notifier = configured_resources(settings)["notifier"]
    with dg.build_resources({"notifier": notifier}) as built:
        channel_settings = built.notifier._settings()
    assert channel_settings.smtp_password.get_secret_value() == "from-the-env-file-83c2"
    assert channel_settings.slack_webhook_url.get_secret_value() == SECRETS["SLACK_WEBHOOK_URL"]


def test_a_secret_the_environment_holds_differently_is_not_bound_to_it() -> None:
    """Settings given a value directly (not from the variable) keep it: binding the variable
    would make the run read another secret than the one the settings hold."""
    settings = load_settings(jenkins_token="given-directly")
    resources, serialized = _resource_snaps(build_definitions(settings=settings))
    assert _value(resources["jenkins"], "token") is None
    assert "given-directly" not in serialized


def test_without_settings_every_resource_is_bound_bare() -> None:
    resources, _ = _resource_snaps(build_definitions())
    assert _value(resources["jenkins"], "token") is None
    assert _value(resources["jenkins"], "url") is None
    assert _value(resources["sources"], "mode") is None


def test_configuring_the_resources_at_load_opens_nothing_and_loads_no_heavy_library(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """`defs()` builds every resource from the settings without a client, a connection or a
    heavy library (the warehouse URL is left out: validating a set one loads SQLAlchemy)."""
    monkeypatch.delenv("TIMBEL_DATABASE_URL")
    code = (
        "import sys\n"
        "from timbel_dagster.definitions import defs\n"
        "defs()\n"
        f"print([m for m in {HEAVY!r} if m in sys.modules])"
    )
    out = subprocess.run(
        [sys.executable, "-W", "ignore", "-c", code],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    ).stdout.strip()
    assert out == "[]"
