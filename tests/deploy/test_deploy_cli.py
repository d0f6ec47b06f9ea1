"""`timbel deploy` end to end on the sample organisation's people and images."""

from __future__ import annotations

import json
from pathlib import Path

from sqlalchemy import select

from tests.security.findings import CLEAN, store
from tests.test_cli import invoke
from timbel_dagster.warehouse.engine import get_engine
from timbel_dagster.warehouse.schema.models import Deployment


def _sample(tmp_path: Path) -> str:
    """Load the sample organisation; the image payments-api runs in prod now."""
    assert invoke(["sample"], tmp_path).returncode == 0
    url = f"sqlite:///{tmp_path / '.timbel' / 'warehouse.db'}"
    with get_engine(url).connect() as connection:
        return connection.execute(
            select(Deployment.image)
            .where(Deployment.service == "payments-api", Deployment.environment == "prod")
            .order_by(Deployment.started_at.desc())
            .limit(1)
        ).scalar_one()


def test_request_approve_and_refusals(tmp_path: Path) -> None:
    image = _sample(tmp_path)
    made = invoke(
        ["deploy", "request", "payments-api", image, "--group", "prod", "--reason", "x", "--json"],
        tmp_path,
    )
    assert made.returncode == 0, made.stderr
    assert json.loads(made.stdout)["status"] == "pending"
    # minji.kim (TIMBEL_USER in these tests) asked: she cannot approve her own request.
    own = invoke(["deploy", "approve", "1", "--reason", "mine"], tmp_path)
    assert own.returncode == 2
    assert "minji.kim made request #1 and cannot approve or reject it" in own.stderr
    no_reason = invoke(["deploy", "approve", "1", "--as", "soyeon.lee"], tmp_path)
    assert no_reason.returncode == 2 and "--reason" in no_reason.stderr
    lead = invoke(["deploy", "approve", "1", "--reason", "ok", "--as", "soyeon.lee"], tmp_path)
    assert lead.returncode == 0, lead.stderr
    unscanned = invoke(["deploy", "approve", "1", "--reason", "ok", "--as", "sungmin.oh"], tmp_path)
    assert unscanned.returncode == 2
    assert unscanned.stderr == (
        f"timbel: error: request #1: the prod security policy blocks image {image}: prod: "
        f"blocked: image {image} was never scanned, and prod requires a scan\n"
    )
    store(f"sqlite:///{tmp_path / '.timbel' / 'warehouse.db'}", CLEAN, image)
    ops = invoke(
        ["deploy", "approve", "1", "--reason", "ok", "--as", "sungmin.oh", "--json"], tmp_path
    )
    assert json.loads(ops.stdout)["status"] == "approved"
    again = invoke(["deploy", "reject", "1", "--reason", "late", "--as", "daeun.seo"], tmp_path)
    assert "request #1 is approved, not pending" in again.stderr
    listed = json.loads(invoke(["deploy", "list", "--json"], tmp_path).stdout)
    assert [(r["number"], r["status"]) for r in listed] == [(1, "approved")]
    table = invoke(["deploy", "list"], tmp_path, COLUMNS="100").stdout.splitlines()
    assert table[0].split() == ["#", "STATUS", "GROUP", "SERVICE", "IMAGE", "REQUESTED", "BY", "AT"]
    assert table[2].split()[:4] == ["#1", "approved", "prod", "payments-api"]
    assert table[3] == "1 request" and max(len(line) for line in table) <= 100
    none = invoke(["deploy", "list", "--status", "rejected"], tmp_path).stdout
    assert none.startswith("no rejected deployment requests")
    typo = invoke(["deploy", "list", "--status", "aproved"], tmp_path)
    assert typo.returncode == 2 and typo.stderr == (
        "timbel: error: --status 'aproved' is not one of pending, approved, rejected, expired, "
        "deploying, deployed, failed, rolled_back\n"
    )
    bad = invoke(["deploy", "request", "payments-api", image, "--group", "qa"], tmp_path)
    assert bad.returncode == 2 and "unknown environment group 'qa'" in bad.stderr
    # Checked against what Timbel knows: one line, exit code 2, no request written.
    nobody = invoke(["deploy", "request", "no-such-service", "img:1", "--group", "dev"], tmp_path)
    assert nobody.returncode == 2 and nobody.stdout == ""
    assert nobody.stderr.startswith(
        "timbel: error: unknown service 'no-such-service': no pipeline or deployment names it; "
        "known services: "
    )
    assert nobody.stderr.count("\n") == 1
    typo = invoke(["deploy", "request", "payments-apii", image, "--group", "dev"], tmp_path)
    assert typo.stderr == (
        "timbel: error: unknown service 'payments-apii': no pipeline or deployment names it; "
        "did you mean payments-api?\n"
    )
    repository, _, _ = image.rpartition(":")
    unknown = invoke(["deploy", "request", "payments-api", f"{repository}:nope", "--group", "dev"],
                  tmp_path)  # fmt: skip
    assert unknown.returncode == 2
    assert unknown.stderr.startswith(
        f"timbel: error: unknown image '{repository}:nope': not in registry_images or any "
        "deployment, and no registry is configured to ask (HARBOR_REGISTRY)"
    )
    listed = json.loads(invoke(["deploy", "list", "--json"], tmp_path).stdout)
    assert [r["number"] for r in listed] == [1]
    stranger = invoke(["deploy", "status", "1", "--as", "x"], tmp_path)
    assert stranger.returncode == 2  # status takes no --as: click refuses the option


def test_fast_track_and_review(tmp_path: Path) -> None:
    image = _sample(tmp_path)
    store(f"sqlite:///{tmp_path / '.timbel' / 'warehouse.db'}", CLEAN, image)
    made = invoke(["deploy", "request", "payments-api", image, "--group", "prod"], tmp_path)
    assert made.returncode == 0, made.stderr
    fast = invoke(
        ["deploy", "fast-track", "1", "--reason", "outage", "--incident", "INC-9", "--as",
         "soyeon.lee"],
        tmp_path,
    )  # fmt: skip
    assert fast.returncode == 0, fast.stderr
    assert "(fast-tracked)" in fast.stdout and "review: DUE" in fast.stdout
    done = invoke(["deploy", "review", "1", "--note", "fine", "--as", "sungmin.oh"], tmp_path)
    assert done.returncode == 0, done.stderr
    assert "review: DUE" not in invoke(["deploy", "status", "1"], tmp_path).stdout
