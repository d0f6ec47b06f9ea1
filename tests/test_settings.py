from __future__ import annotations

import pytest

from timbel_dagster.settings import SettingsError, load_settings


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch, tmp_path) -> None:
    # Settings also read `.env` from the working directory; run where there is none.
    monkeypatch.chdir(tmp_path)
    for name in (
        "TIMBEL_HOME",
        "TIMBEL_DATABASE_URL",
        "TIMBEL_SAMPLE_DATA",
        "JENKINS_URL",
        "JENKINS_JOBS",
        "SMTP_PORT",
        "SMTP_PASSWORD",
        "GITLAB_PROJECTS",
    ):
        monkeypatch.delenv(name, raising=False)


def test_defaults_put_everything_under_timbel_home(tmp_path) -> None:
    settings = load_settings()
    assert settings.database_url == f"sqlite:///{(tmp_path / '.timbel' / 'warehouse.db')}"
    assert settings.dagster_home == tmp_path / ".timbel" / "dagster"
    assert settings.timbel_sample_data is False
    assert settings.smtp_security == "starttls"


def test_environment_and_dotenv_are_read(monkeypatch: pytest.MonkeyPatch, tmp_path) -> None:
    (tmp_path / ".env").write_text("JENKINS_JOBS=team-a/api, team-b/web\nSMTP_PORT=2525\n")
    monkeypatch.setenv("TIMBEL_DATABASE_URL", "postgresql://timbel@db.internal:5432/warehouse")
    settings = load_settings()
    assert settings.jenkins_jobs == ["team-a/api", "team-b/web"]
    assert settings.smtp_port == 2525
    # A plain postgresql:// URL is pinned to the psycopg 3 driver we ship.
    assert settings.database_url == "postgresql+psycopg://timbel@db.internal:5432/warehouse"


@pytest.mark.parametrize(
    ("variable", "value", "expected"),
    [
        ("TIMBEL_DATABASE_URL", "mysql://root@localhost/x", "TIMBEL_DATABASE_URL: unsupported"),
        ("TIMBEL_DATABASE_URL", "no url at all", "TIMBEL_DATABASE_URL: not a database URL"),
        ("TIMBEL_DATABASE_URL", "postgresql://u@h:5432", "TIMBEL_DATABASE_URL: the PostgreSQL"),
        ("JENKINS_URL", "jenkins.internal", "JENKINS_URL:"),
        ("SMTP_PORT", "99999", "SMTP_PORT:"),
        ("TIMBEL_SAMPLE_DATA", "maybe", "TIMBEL_SAMPLE_DATA:"),
        ("SMTP_SECURITY", "tls-please", "SMTP_SECURITY:"),
        ("TIMBEL_HISTORY_START", "2010-13-01", "TIMBEL_HISTORY_START:"),
        ("TIMBEL_HISTORY_START", "2999-01-01", "TIMBEL_HISTORY_START: must not be in the future"),
    ],
)
def test_invalid_value_is_one_line_naming_the_variable(
    monkeypatch: pytest.MonkeyPatch, variable: str, value: str, expected: str
) -> None:
    monkeypatch.setenv(variable, value)
    with pytest.raises(SettingsError) as error:
        load_settings()
    message = str(error.value)
    assert message.startswith(expected)
    assert "\n" not in message


def test_database_url_with_password_is_never_echoed(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TIMBEL_DATABASE_URL", "oracle://scott:tiger-secret@db/x")
    with pytest.raises(SettingsError) as error:
        load_settings()
    assert "tiger-secret" not in str(error.value)


def test_secrets_are_hidden_in_repr(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SMTP_PASSWORD", "hunter2")
    settings = load_settings()
    assert "hunter2" not in repr(settings)
    assert settings.smtp_password is not None
    assert settings.smtp_password.get_secret_value() == "hunter2"


def test_env_example_lists_every_setting_and_loads_as_is(tmp_path) -> None:
    import re
    from pathlib import Path

    from timbel_dagster.settings import Settings

    example = (Path(__file__).resolve().parents[1] / ".env.example").read_text()
    listed = set(re.findall(r"^([A-Z0-9_]+)=", example, re.MULTILINE))
    assert listed == {
        str(field.validation_alias or name).upper() for name, field in Settings.model_fields.items()
    }
    (tmp_path / ".env").write_text(example)
    assert load_settings().database_url.endswith("/.timbel/warehouse.db")


def test_timbel_demo_leaves_this_home_in_sample_mode(
    monkeypatch: pytest.MonkeyPatch, tmp_path
) -> None:
    """Where `timbel demo` ran (TIMBEL_HOME/sample-mode exists) TIMBEL_SAMPLE_DATA defaults
    to true; a value in the environment or `.env` always wins, an empty one does not count."""
    assert load_settings().timbel_sample_data is False
    marker = tmp_path / ".timbel" / "sample-mode"
    marker.parent.mkdir()
    marker.write_text("written by timbel demo\n")
    settings = load_settings()
    assert (
        settings.timbel_sample_data is True
        and settings.sample_mode_marker == marker.relative_to(tmp_path)
    )
    monkeypatch.setenv("TIMBEL_SAMPLE_DATA", "")
    assert load_settings().timbel_sample_data is True
    monkeypatch.setenv("TIMBEL_SAMPLE_DATA", "false")
    assert load_settings().timbel_sample_data is False
    monkeypatch.delenv("TIMBEL_SAMPLE_DATA")
    (tmp_path / ".env").write_text("TIMBEL_SAMPLE_DATA=false\n")
    assert load_settings().timbel_sample_data is False
    (tmp_path / ".env").unlink()
    # Another TIMBEL_HOME is not in sample mode.
    monkeypatch.setenv("TIMBEL_HOME", str(tmp_path / "elsewhere"))
    assert load_settings().timbel_sample_data is False


def test_the_package_names_the_model_it_builds_on_first_use() -> None:
    """`Settings` lives in settings/model.py (pydantic-settings loads only with it) and the
    package still names it; any other unknown name is an AttributeError naming it."""
    import timbel_dagster.settings as settings
    from timbel_dagster.settings.model import Settings

    assert settings.Settings is Settings
    assert isinstance(load_settings(), Settings)
    with pytest.raises(AttributeError, match="has no attribute 'no_such_setting'"):
        _ = settings.no_such_setting
