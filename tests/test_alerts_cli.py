"""`timbel alerts` and `timbel notify` end to end: the command run in process (`invoke`),
each test in its own directory (so TIMBEL_HOME is `.timbel` there, with a SQLite warehouse).
Tests that need the sample organisation copy a directory prepared once per module with
`timbel sample` and `timbel metrics collect --hours 24` (TIMBEL_SAMPLE_DATA=true)."""

from __future__ import annotations

import datetime as dt
import json
import re
import shutil
import uuid
from pathlib import Path
from typing import Any

import pytest
from pytest_httpserver import HTTPServer
from sqlalchemy import select

from tests.test_cli import invoke
from timbel_dagster.warehouse.audit.chain import verify_chain
from timbel_dagster.warehouse.engine import get_engine
from timbel_dagster.warehouse.schema.models import AuditEvent
from timbel_dagster.warehouse.schema.notify import AlertRule, Notification, Silence, Subscription

# One worker builds the module fixture, not each (tests/conftest.py):
# the sample organisation and its metrics, loaded through the CLI once.
pytestmark = pytest.mark.xdist_group("alerts_cli")

REPO = Path(__file__).resolve().parent.parent
EXAMPLE_RULES = REPO / "deploy" / "alert-rules.example.yaml"
SAMPLE_RULES = REPO / "timbel_dagster" / "notify" / "sample_rules.yaml"
SAMPLE = {"TIMBEL_SAMPLE_DATA": "true"}
HOOK = "/services/T0TEAM/B0HOOK/cliHookToken"
# Variables of the test process that must not reach the commands (invoke() drops TIMBEL_*).
CHANNEL_VARIABLES = ("SLACK_WEBHOOK_URL", "SMTP_HOST", "SMTP_FROM", "PROMETHEUS_URL")


@pytest.fixture(autouse=True)
def no_channels(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in CHANNEL_VARIABLES:
        monkeypatch.delenv(name, raising=False)


@pytest.fixture(scope="module")
def prepared(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A directory whose warehouse holds the sample organisation and 24 h of its metrics."""
    directory = tmp_path_factory.mktemp("sample-org")
    loaded = invoke(["sample"], directory)
    assert loaded.returncode == 0, loaded.stderr
    collected = invoke(["metrics", "collect", "--hours", "24", "--json"], directory, **SAMPLE)
    assert collected.returncode == 0, collected.stderr
    return directory


@pytest.fixture
def sample_dir(prepared: Path, tmp_path: Path) -> Path:
    """A private copy of the prepared directory."""
    target = tmp_path / "org"
    shutil.copytree(prepared, target)
    return target


def _warehouse(cwd: Path) -> Any:
    """The warehouse the commands used: TIMBEL_HOME (`.timbel`) under their directory."""
    path = cwd / ".timbel" / "warehouse.db"
    assert path.exists()
    return get_engine(f"sqlite:///{path.resolve()}")


def _audit(cwd: Path) -> list[Any]:
    with _warehouse(cwd).connect() as connection:
        assert verify_chain(connection).intact
        return connection.execute(
            select(AuditEvent.actor, AuditEvent.action, AuditEvent.target, AuditEvent.details)
            .where(AuditEvent.action != "db.upgrade")
            .order_by(AuditEvent.id)
        ).all()


def _json(args: list[str], cwd: Path, **env: str) -> Any:
    completed = invoke(args, cwd, **env)
    assert completed.returncode == 0, completed.stderr
    return json.loads(completed.stdout)


def _one_line_error(completed: Any) -> str:
    """The command failed as a user error: exit 2 and one line on stderr, no traceback."""
    assert completed.returncode == 2, (completed.stdout, completed.stderr)
    assert completed.stderr.startswith("timbel: error: "), completed.stderr
    assert completed.stderr.count("\n") == 1 and "Traceback" not in completed.stderr
    return completed.stderr.strip()


# --- alerts validate -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "names"),
    [
        (
            EXAMPLE_RULES,
            ["namespace-cpu-near-quota", "pipeline-failure-rate", "critical-vulnerability-in-prod"],
        ),
        (
            SAMPLE_RULES,
            ["namespace-cpu-near-quota", "workload-crash-looping", "pipeline-failure-rate"],
        ),
    ],
)
def test_validate_accepts_the_shipped_rules(tmp_path: Path, path: Path, names: list[str]) -> None:
    assert _json(["alerts", "validate", str(path), "--json"], tmp_path) == {
        "valid": True,
        "rules": names,
        "errors": [],
    }
    if path == EXAMPLE_RULES:
        plain = invoke(["alerts", "validate", str(path)], tmp_path)
        assert plain.returncode == 0 and plain.stdout == f"{path}: 3 rules, all valid\n"


GOOD_RULE = """\
  - name: ok-rule
    fact: pipeline_failure_rate
    threshold: "> 0.2"
"""


@pytest.mark.parametrize(
    ("bad_rule", "line", "rule", "problem"),
    [
        (
            "  - name: broken-rule\n    fact: pipeline_failure_rate\n    threshold: about half\n",
            5,
            "broken-rule",
            "threshold 'about half' is not like '> 0.2'",
        ),
        (
            "  - name: hot-nodes\n    fact: node_temperature\n",
            5,
            "hot-nodes",
            "unknown fact 'node_temperature'; facts are ",
        ),
        (
            "  - name: bad-promql\n    expr: 'sum(rate(http_requests_total[5m])'\n",
            5,
            "bad-promql",
            "invalid PromQL",
        ),
        (
            "  - name: typo\n    fact: pipeline_failure_rate\n    treshold: '> 0.5'\n",
            5,
            "typo",
            "unknown key(s) treshold",
        ),
        (
            "  - name: ok-rule\n    fact: crash_looping_workloads\n",
            5,
            "ok-rule",
            "is also defined at ",
        ),
    ],
)
def test_validate_names_the_line_and_rule_that_is_wrong(
    tmp_path: Path, bad_rule: str, line: int, rule: str, problem: str
) -> None:
    path = tmp_path / "rules.yaml"
    path.write_text("rules:\n" + GOOD_RULE + bad_rule)
    completed = invoke(["alerts", "validate", "rules.yaml", "--json"], tmp_path)
    assert completed.returncode == 2
    result = json.loads(completed.stdout)
    assert result["valid"] is False and result["rules"] == []
    [error] = result["errors"]
    assert error.startswith(f"rules.yaml:{line}: rule {rule!r}") and problem in error


def test_validate_without_json_prints_one_line_to_stderr(tmp_path: Path) -> None:
    (tmp_path / "rules.yaml").write_text(
        "rules:\n" + GOOD_RULE + "  - name: broken\n    fact: pipeline_failure_rate\n"
        "    severity: urgent\n"
    )
    plain = invoke(["alerts", "validate", "rules.yaml"], tmp_path)
    assert _one_line_error(plain) == (
        "timbel: error: rules.yaml:5: rule 'broken': severity must be one of critical, high, "
        "warning, info, not 'urgent'"
    )
    assert plain.stdout == ""


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("rules:\n  - name: [unclosed\n", "rules.yaml:3: not valid YAML"),
        ("alerts: []\n", "rules.yaml:1: expected a top-level 'rules:' list"),
    ],
)
def test_validate_refuses_a_file_that_is_not_a_rules_list(
    tmp_path: Path, text: str, expected: str
) -> None:
    (tmp_path / "rules.yaml").write_text(text)
    error = _one_line_error(invoke(["alerts", "validate", "rules.yaml"], tmp_path))
    assert error.startswith(f"timbel: error: {expected}")


# --- alerts rules add / list / delete --------------------------------------------------------


def test_rules_add_list_and_delete(tmp_path: Path) -> None:
    added = invoke(["alerts", "rules", "add", str(SAMPLE_RULES)], tmp_path)
    assert added.returncode == 0, added.stderr
    assert added.stdout == (
        "stored 3 rule(s): namespace-cpu-near-quota, workload-crash-looping, "
        "pipeline-failure-rate\n"
    )
    listed = _json(["alerts", "rules", "list", "--json"], tmp_path)
    assert listed["errors"] == []
    rows = {r["name"]: r for r in listed["rules"]}
    # The built-in rules are listed after them (docs/operations.md, docs/slos.md).
    assert rows.pop("ingestion-stale")["origin"] == "built-in:8"
    assert rows.pop("slo-fast-burn")["origin"] == "built-in:19"
    assert rows.pop("slo-slow-burn")["origin"] == "built-in:27"
    assert rows.pop("backup-stale")["origin"] == "built-in:37"
    assert rows.pop("backup-failed")["origin"] == "built-in:44"
    assert rows.pop("base-backup-stale")["origin"] == "built-in:55"
    assert rows.pop("base-backup-failed")["origin"] == "built-in:62"
    assert set(rows) == {
        "namespace-cpu-near-quota",
        "workload-crash-looping",
        "pipeline-failure-rate",
    }
    assert {name: r["origin"] for name, r in rows.items()} == {
        name: f"warehouse:{name}" for name in rows
    }
    assert rows["namespace-cpu-near-quota"] | {"origin": ""} == {
        "name": "namespace-cpu-near-quota",
        "severity": "critical",
        "kind": "warehouse",
        "for": "0:00:00",
        "renotify": "1:00:00",
        "origin": "",
        "query": "namespace_cpu_quota_ratio > 0.9",
    }

    # Adding the same file again replaces the rules by name: still three, and the seven built in.
    assert invoke(["alerts", "rules", "add", str(SAMPLE_RULES)], tmp_path).returncode == 0
    assert len(_json(["alerts", "rules", "list", "--json"], tmp_path)["rules"]) == 10

    # The rules file wins over a warehouse rule of the same name, which is reported.
    both = _json(
        ["alerts", "rules", "list", "--json"],
        tmp_path,
        TIMBEL_ALERT_RULES_FILE=str(EXAMPLE_RULES),
    )
    origins = {r["name"]: r["origin"] for r in both["rules"]}
    assert origins["pipeline-failure-rate"].startswith(f"{EXAMPLE_RULES}:")
    assert origins["workload-crash-looping"] == "warehouse:workload-crash-looping"
    assert origins["namespace-cpu-near-quota"].startswith(f"{EXAMPLE_RULES}:")
    assert len(both["errors"]) == 2
    assert all("is skipped" in e and "defines it too" in e for e in both["errors"])

    deleted = invoke(["alerts", "rules", "delete", "workload-crash-looping"], tmp_path)
    assert deleted.returncode == 0 and deleted.stdout == "deleted rule workload-crash-looping\n"
    names = [r["name"] for r in _json(["alerts", "rules", "list", "--json"], tmp_path)["rules"]]
    assert sorted(names) == [
        "backup-failed",
        "backup-stale",
        "base-backup-failed",
        "base-backup-stale",
        "ingestion-stale",
        "namespace-cpu-near-quota",
        "pipeline-failure-rate",
        "slo-fast-burn",
        "slo-slow-burn",
    ]

    unknown = invoke(["alerts", "rules", "delete", "no-such-rule"], tmp_path)
    assert _one_line_error(unknown) == (
        "timbel: error: no alert rule named 'no-such-rule' in the warehouse"
    )
    assert [(a.actor, a.action, a.target) for a in _audit(tmp_path)] == [
        (
            "minji.kim",
            "alert_rules.save",
            "namespace-cpu-near-quota,workload-crash-looping,pipeline-failure-rate",
        ),
        (
            "minji.kim",
            "alert_rules.save",
            "namespace-cpu-near-quota,workload-crash-looping,pipeline-failure-rate",
        ),
        ("minji.kim", "alert_rules.delete", "workload-crash-looping"),
    ]


def test_rules_add_of_an_invalid_file_stores_nothing(tmp_path: Path) -> None:
    (tmp_path / "rules.yaml").write_text(
        "rules:\n" + GOOD_RULE + "  - name: broken\n    fact: nothing_like_it\n"
    )
    completed = invoke(["alerts", "rules", "add", "rules.yaml"], tmp_path)
    error = _one_line_error(completed)
    assert error.startswith("timbel: error: rules.yaml:5: rule 'broken': unknown fact")
    listed = _json(["alerts", "rules", "list", "--json"], tmp_path)
    # Only the built-in ones.
    assert [r["name"] for r in listed["rules"]] == [
        "ingestion-stale",
        "slo-fast-burn",
        "slo-slow-burn",
        "backup-stale",
        "backup-failed",
        "base-backup-stale",
        "base-backup-failed",
    ]
    assert listed["errors"] == []
    with _warehouse(tmp_path).connect() as connection:
        assert connection.execute(select(AlertRule.name)).all() == []
    assert _audit(tmp_path) == []

    missing = invoke(["alerts", "rules", "add", "nowhere.yaml"], tmp_path)
    assert _one_line_error(missing).startswith("timbel: error: cannot read nowhere.yaml")


def test_rules_add_of_a_rule_with_a_date_label(tmp_path: Path) -> None:
    (tmp_path / "rules.yaml").write_text(
        "rules:\n  - name: since-release\n    fact: pipeline_failure_rate\n"
        "    labels: {since: 2026-01-01}\n"
    )
    assert invoke(["alerts", "validate", "rules.yaml"], tmp_path).returncode == 0
    added = invoke(["alerts", "rules", "add", "rules.yaml"], tmp_path)
    assert "Traceback" not in added.stderr
    assert added.returncode == 0
    listed = json.loads(invoke(["alerts", "rules", "list", "--json"], tmp_path).stdout)
    assert listed["rules"][0]["name"] == "since-release"
    empty = tmp_path / "empty.yaml"
    empty.write_text("rules: []\n")
    nothing = invoke(["alerts", "rules", "add", "empty.yaml"], tmp_path)
    assert nothing.returncode == 2 and "empty.yaml: no rules to store" in nothing.stderr


# --- alerts silence --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("options", "expected"),
    [
        (["--match", "cluster", "--comment", "x"], "--match 'cluster' is not label=value"),
        (["--match", "a=b", "--comment", "  "], "--comment must say why"),
        (["--match", "a=b", "--for", "soon", "--comment", "x"], "'soon' is not a duration"),
        (["--match", "a=b", "--for", "0s", "--comment", "x"], "--for must be longer than 0s"),
    ],
)
def test_silence_refuses_bad_input(tmp_path: Path, options: list[str], expected: str) -> None:
    error = _one_line_error(invoke(["alerts", "silence", *options], tmp_path))
    assert expected in error


def test_silence_refuses_an_unknown_actor(tmp_path: Path) -> None:
    """The silence names its actor: TIMBEL_USER must be a user of the warehouse."""
    error = _one_line_error(
        invoke(["alerts", "silence", "--match", "a=b", "--comment", "why"], tmp_path)
    )
    assert "user 'minji.kim' is not in the users table" in error
    with _warehouse(tmp_path).connect() as connection:
        assert connection.execute(select(Silence.__table__)).all() == []


def test_silence_is_stored_and_audited(tmp_path: Path) -> None:
    added = invoke(["users", "add", "minji.kim", "--role", "admin"], tmp_path)
    assert added.returncode == 0, added.stderr
    completed = invoke(
        [
            "alerts",
            "silence",
            "--match",
            "alertname=namespace-cpu-near-quota",
            "--match",
            "cluster=seoul-dev-01",
            "--for",
            "2h",
            "--comment",
            "quota raise under way",
        ],
        tmp_path,
    )
    assert completed.returncode == 0, completed.stderr
    words = completed.stdout.split()
    assert words[0] == "silence" and words[2] == "until" and completed.stdout.endswith(" UTC\n")
    silence_id = uuid.UUID(words[1])
    matchers = {"alertname": "namespace-cpu-near-quota", "cluster": "seoul-dev-01"}
    with _warehouse(tmp_path).connect() as connection:
        [row] = connection.execute(select(Silence.__table__)).all()
    assert row.id == silence_id and row.matchers == matchers
    assert row.created_by == "minji.kim" and row.comment == "quota raise under way"
    assert row.ends_at - row.starts_at == dt.timedelta(hours=2)
    [(actor, action, target, details)] = [e for e in _audit(tmp_path) if e[1] == "alerts.silence"]
    assert (actor, action, target) == ("minji.kim", "alerts.silence", str(silence_id))
    assert details["matchers"] == matchers and details["comment"] == "quota raise under way"
    assert details["ends_at"] == row.ends_at.isoformat()


# --- notify ----------------------------------------------------------------------------------


def test_subscribe_and_unsubscribe_a_sample_user(sample_dir: Path) -> None:
    args = ["--user", "minji.kim", "--channel", "email", "--event", "alert"]
    first = invoke(["notify", "subscribe", *args], sample_dir)
    assert first.returncode == 0, first.stderr
    assert first.stdout == "minji.kim subscribed to alert on email\n"
    again = invoke(["notify", "subscribe", *args], sample_dir)
    assert again.stdout == "minji.kim was already subscribed to alert on email\n"
    off = invoke(["notify", "unsubscribe", *args], sample_dir)
    assert off.returncode == 0 and off.stdout == "minji.kim unsubscribed from alert on email\n"
    with _warehouse(sample_dir).connect() as connection:
        rows = connection.execute(
            select(
                Subscription.user_name,
                Subscription.channel,
                Subscription.event,
                Subscription.rule,
                Subscription.active,
            )
        ).all()
    assert rows == [("minji.kim", "email", "alert", "*", False)]

    unknown = invoke(
        ["notify", "subscribe", "--user", "nobody.here", "--channel", "email"], sample_dir
    )
    assert _one_line_error(unknown) == (
        "timbel: error: unknown user 'nobody.here': there is no such name in the users table"
    )
    bad_event = invoke(["notify", "subscribe", *args[:4], "--event", "weather"], sample_dir)
    assert "unknown event 'weather'; valid: *, pipeline" in _one_line_error(bad_event)
    neither = invoke(["notify", "unsubscribe", "--event", "alert"], sample_dir)
    assert _one_line_error(neither) == "timbel: error: give --user and --channel, or --token"


def test_evaluate_the_sample_rules_notifies_slack_and_records_history(
    sample_dir: Path, httpserver: HTTPServer
) -> None:
    httpserver.expect_request(HOOK, method="POST").respond_with_data("ok")
    env = SAMPLE | {
        "TIMBEL_ALERT_RULES_FILE": str(SAMPLE_RULES),
        "SLACK_WEBHOOK_URL": httpserver.url_for(HOOK),
    }
    assert _json(["notify", "history", "--json"], sample_dir) == []
    subscribed = invoke(
        ["notify", "subscribe", "--user", "minji.kim", "--channel", "slack", "--event", "alert"],
        sample_dir,
    )
    assert subscribed.returncode == 0, subscribed.stderr

    report = _json(["alerts", "evaluate", "--json"], sample_dir, **env)
    # The sample's three and the built-in ingestion-stale, over the instance the commands
    # materialized in (TIMBEL_HOME/dagster): fresh, so it does not fire; the SLO burn-rate
    # rules (no SLO status stored: nothing fires); and the built-in backup and base backup
    # rules, silent where no backup was ever tried.
    assert report["rules"] == 10 and report["errors"] == []
    transitions = report["transitions"]
    # The sample's commerce namespaces reach their CPU quota; auth-gateway crash-loops in dev.
    assert {t["rule"] for t in transitions} >= {
        "namespace-cpu-near-quota",
        "workload-crash-looping",
    }
    assert {t["rule"] for t in transitions} <= {
        "namespace-cpu-near-quota",
        "workload-crash-looping",
        "pipeline-failure-rate",
    }
    assert all(t["kind"] == "fired" and t["notified"] for t in transitions)
    assert report["series"] == len(transitions)
    quota = [t["labels"] for t in transitions if t["rule"] == "namespace-cpu-near-quota"]
    assert {"cluster": "seoul-prod-01", "namespace": "commerce"} in quota
    assert report["notifications_sent"] == len(transitions) == len(httpserver.log)
    posted = [request.get_data(as_text=True) for request, _ in httpserver.log]
    assert any("auth-gateway in seoul-dev-01/platform is crash-looping" in p for p in posted)

    history = _json(["notify", "history", "--json"], sample_dir)
    assert len(history) == len(transitions)
    assert {
        (h["event"], h["channel"], h["recipient"], h["status"], h["attempts"]) for h in history
    } == {("alert_fired", "slack", "webhook", "sent", 1)}
    with _warehouse(sample_dir).connect() as connection:
        stored = connection.execute(select(Notification.event, Notification.status)).all()
    assert stored == [("alert_fired", "sent")] * len(transitions)

    firing = _json(["alerts", "list", "--json"], sample_dir)
    assert len(firing) == len(transitions) and {a["state"] for a in firing} == {"firing"}
    assert _json(["alerts", "list", "--state", "resolved", "--json"], sample_dir) == []
    # For people: headed tables within 100 columns, labels as k=v, values rounded.
    table = invoke(["alerts", "list"], sample_dir, COLUMNS="100", **env).stdout.splitlines()
    assert table[0].split() == ["STATE", "SEVERITY", "RULE", "LABELS", "VALUE", "SINCE"]
    assert table[-1] == f"{len(transitions)} firing alerts" and "{" not in "".join(table)
    assert max(len(line) for line in table) <= 100
    assert any(line.split()[:3] == ["firing", "critical", "namespace-cpu-near-quota"]
               and "cluster=seoul-prod-01," in line for line in table)  # fmt: skip
    sent = invoke(["notify", "history"], sample_dir, COLUMNS="100").stdout.splitlines()
    assert sent[0].split() == [
        "SENT", "EVENT", "CHANNEL", "RECIPIENT", "STATUS", "TRIES", "LAST", "ERROR",
    ]  # fmt: skip
    assert sent[2].split()[2:] == ["alert_fired", "slack", "webhook", "sent", "1", "-"]
    assert sent[-1] == f"{len(transitions)} notifications"

    # Evaluated again at once: the alerts are firing and notified; nothing new happens.
    again = _json(["alerts", "evaluate", "--json"], sample_dir, **env)
    assert again["transitions"] == [] and again["notifications_sent"] == 0
    assert len(httpserver.log) == len(transitions)
    plain = invoke(["alerts", "evaluate"], sample_dir, **env)
    assert plain.returncode == 0
    assert plain.stdout.startswith(f"10 rules, {len(transitions)} active series, 0 transitions")


def test_evaluate_prints_its_transitions_as_a_table(sample_dir: Path) -> None:
    env = SAMPLE | {"TIMBEL_ALERT_RULES_FILE": str(SAMPLE_RULES), "COLUMNS": "100"}
    plain = invoke(["alerts", "evaluate"], sample_dir, **env)
    assert plain.returncode == 0, plain.stderr
    lines = plain.stdout.splitlines()
    assert lines[0].split() == ["CHANGE", "RULE", "LABELS", "NOTICE", "DUE"]
    assert max(len(line) for line in lines) <= 100 and "{" not in plain.stdout
    fired = [line for line in lines if line.startswith("fired ")]
    assert any("namespace-cpu-near-quota" in line and "cluster=seoul-prod-01," in line
               for line in fired)  # fmt: skip
    assert all(line.split()[-1] == "yes" for line in fired)  # due, though no channel is set
    assert re.fullmatch(
        rf"10 rules, {len(fired)} active series, {len(fired)} transitions, 0 notices sent in "
        r"\d+\.\ds",
        lines[-1],
    )
