"""`timbel tenant` end to end, in process (`tests.test_cli.invoke`): a clusters file
pointing at two fake API servers (the token in a variable), a SQLite warehouse with the
sample organisation loaded.

The commands run through their click group (`timbel_dagster.cli.tenants.tenant`), which
`timbel` registers as `timbel tenant`.
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest
from sqlalchemy import select

from tests.fakes.kubernetes_server import FakeKubernetes
from tests.tenants.conftest import ACTOR, TOKEN, TOKEN_ENV
from tests.test_cli import invoke
from timbel_dagster.warehouse.audit.chain import verify_chain
from timbel_dagster.warehouse.engine import get_engine
from timbel_dagster.warehouse.schema.models import AuditEvent

TENANT = ["tenant"]
SAMPLE = ["sample"]


@pytest.fixture
def env(tmp_path: Path, clusters_file: Path) -> dict[str, str]:
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text("apiVersion: v1\nkind: Config\nclusters: []\ncontexts: []\nusers: []\n")
    environment = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("TIMBEL_", "JENKINS", "GITLAB", "DAGSTER_HOME", "KUBECONFIG"))
    }
    return environment | {
        "TIMBEL_USER": ACTOR,
        "TIMBEL_SAMPLE_END_DATE": "2026-11-01",
        "TIMBEL_DATABASE_URL": f"sqlite:///{tmp_path / 'warehouse.db'}",
        "TIMBEL_CLUSTERS_FILE": str(clusters_file),
        "KUBECONFIG": str(kubeconfig),
        TOKEN_ENV: TOKEN,
    }


def run(
    command: list[str],
    args: list[str],
    env: dict[str, str],
    cwd: Path,
    stdin: str = "",
    **extra: str,
) -> subprocess.CompletedProcess:
    """The command in process (`tests.test_cli.invoke`) with exactly `env`'s variables."""
    return invoke([*command, *args], cwd, stdin=stdin, **(env | extra))


def audit(env: dict[str, str]) -> list[tuple[str, str]]:
    with get_engine(env["TIMBEL_DATABASE_URL"]).connect() as connection:
        assert verify_chain(connection).intact
        query = select(AuditEvent.actor, AuditEvent.action).order_by(AuditEvent.id)
        return [tuple(r) for r in connection.execute(query).all()]


def test_tenant_commands_end_to_end(
    env: dict[str, str], tmp_path: Path, dev: FakeKubernetes, staging: FakeKubernetes
) -> None:
    def tenant(*args: str, stdin: str = "", **extra: str) -> subprocess.CompletedProcess:
        return run(TENANT, list(args), env, tmp_path, stdin, **extra)

    loaded = run(SAMPLE, ["--json"], env, tmp_path)
    assert loaded.returncode == 0, loaded.stderr
    create = ["create", "shop", "--cpu", "8", "--memory", "16Gi",
              "--users", "jaehyun.park,soyeon.lee"]  # fmt: skip

    # Refused: nothing changes on either cluster, each attempt is audited, exit code 2.
    refusals = [
        (["--cpu", "8 cores"], "timbel: error: cpu '8 cores' is not a Kubernetes quantity"),
        (["--cluster", "busan-dev-09"], "timbel: error: unknown cluster(s) busan-dev-09"),
        (["--group", "qa"], "timbel: error: unknown group 'qa'"),
        (["--group", "dev", "--users", "nobody"], "timbel: error: user 'nobody' is not in the"),
        ([], "timbel: error: name the clusters: give --cluster NAME or --group"),
    ]
    for extra, message in refusals:
        refused = tenant(*create, *extra)
        assert refused.returncode == 2 and refused.stderr.startswith(message), refused.stderr
        assert "Traceback" not in refused.stderr
    stranger = tenant(*create, "--group", "dev", TIMBEL_USER="mallory")
    assert "user 'mallory' is not in the users table" in stranger.stderr
    impostor = tenant(*create, "--group", "dev", "--as", "eve")
    assert impostor.returncode == 2
    assert impostor.stderr == (
        "timbel: error: user 'eve' is not in the users table: add them with `timbel users add "
        "eve --role ROLE`, or act as a known user with --as or TIMBEL_USER (`timbel users list`)\n"
    )
    assert [r for f in (dev, staging) for r in f.requests if r[0] != "GET"] == []
    refused_events = [(ACTOR, "tenant.create.refused")] * len(refusals)
    assert audit(env) == [
        (ACTOR, "db.upgrade"),
        (ACTOR, "sample.load"),
        *refused_events,
        ("mallory", "tenant.create.refused"),
        ("eve", "tenant.create.refused"),
    ]

    dry = tenant(*create, "--group", "dev", "--dry-run", "--json")
    assert dry.returncode == 0, dry.stderr
    assert json.loads(dry.stdout)["dry_run"] is True and dev.get("Namespace", "shop") is None

    made = tenant(*create, "--cluster", "seoul-dev-01", "--group", "staging", "--as", "admin")
    assert made.returncode == 0, made.stderr
    assert audit(env)[-1] == ("admin", "tenant.create")  # audited as the --as user
    assert "seoul-dev-01: Namespace shop created" in made.stdout
    assert "seoul-stg-01: 6 created" in made.stdout
    assert "tenant shop applied (tenant.create): cpu 8, memory 16Gi" in made.stdout
    assert staging.get("RoleBinding", "timbel-edit-soyeon.lee", "shop") is not None

    again = tenant(*create, "--group", "dev", "--group", "staging", "--json")
    result = json.loads(again.stdout)
    assert result["action"] == "tenant.update"
    assert {o["action"] for c in result["clusters"] for o in c["objects"]} == {"unchanged"}
    assert "seoul-dev-01: Namespace shop unchanged" in again.stderr  # progress off stdout

    listed = json.loads(tenant("list", "--json").stdout)
    assert [(t["name"], t["cpu_cores"], t["users"], t["clusters"]) for t in listed] == [
        ("shop", 8.0, ["jaehyun.park", "soyeon.lee"], ["seoul-dev-01", "seoul-stg-01"])
    ]
    table = tenant("list").stdout.splitlines()
    assert table[0].split() == ["NAME", "STATUS", "CPU", "MEMORY", "USERS", "CLUSTERS"]
    assert " ".join(table[2].split()) == (
        "shop provisioned 8 16Gi jaehyun.park, soyeon.lee seoul-dev-01, seoul-stg-01"
    )
    assert table[-1] == "1 tenant"
    assert json.loads(tenant("report", "--json").stdout) == []
    bad_month = tenant("report", "--month", "2026-13")
    assert bad_month.returncode == 2 and "month must be YYYY-MM" in bad_month.stderr

    # Deleting asks first: no answer (or "n") deletes nothing and records nothing.
    for answer in ("", "n\n"):
        kept = tenant("delete", "shop", stdin=answer)
        assert kept.returncode == 1 and "Delete tenant shop: namespace shop" in kept.stdout
        assert "seoul-dev-01, seoul-stg-01?" in kept.stdout
    assert dev.get("Namespace", "shop") is not None
    assert audit(env)[-1] == (ACTOR, "tenant.update")
    deleted = tenant("delete", "shop", "--as", "soyeon.lee", stdin="y\n")
    assert deleted.returncode == 0, deleted.stderr
    assert "tenant shop deleted" in deleted.stdout
    assert dev.get("Namespace", "shop") is None and staging.get("Namespace", "shop") is None
    assert json.loads(tenant("list", "--json").stdout) == []

    gone = tenant("delete", "shop", "--yes")
    assert gone.returncode == 2 and "no provisioned tenant 'shop'" in gone.stderr
    assert audit(env)[-4:] == [
        ("admin", "tenant.create"), (ACTOR, "tenant.update"), ("soyeon.lee", "tenant.delete"),
        (ACTOR, "tenant.delete.refused"),
    ]  # fmt: skip
