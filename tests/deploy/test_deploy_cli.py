"""`timbel deploy` end to end on the sample organisation's people."""

from __future__ import annotations

import json
from pathlib import Path

from tests.test_cli import run

IMAGE = "registry.example.com/payments/api:2.0.1"


def test_request_approve_and_refusals(tmp_path: Path) -> None:
    assert run(["sample"], tmp_path).returncode == 0
    made = run(
        ["deploy", "request", "payments-api", IMAGE, "--group", "prod", "--reason", "x", "--json"],
        tmp_path,
    )
    assert made.returncode == 0, made.stderr
    assert json.loads(made.stdout)["status"] == "pending"
    # minji.kim (TIMBEL_USER in these tests) asked: she cannot approve her own request.
    own = run(["deploy", "approve", "1", "--reason", "mine"], tmp_path)
    assert own.returncode == 2
    assert "minji.kim made request #1 and cannot approve or reject it" in own.stderr
    no_reason = run(["deploy", "approve", "1", "--as", "soyeon.lee"], tmp_path)
    assert no_reason.returncode == 2 and "--reason" in no_reason.stderr
    lead = run(["deploy", "approve", "1", "--reason", "ok", "--as", "soyeon.lee"], tmp_path)
    assert lead.returncode == 0, lead.stderr
    ops = run(
        ["deploy", "approve", "1", "--reason", "ok", "--as", "sungmin.oh", "--json"], tmp_path
    )
    assert json.loads(ops.stdout)["status"] == "approved"
    again = run(["deploy", "reject", "1", "--reason", "late", "--as", "daeun.seo"], tmp_path)
    assert "request #1 is approved, not pending" in again.stderr
    listed = json.loads(run(["deploy", "list", "--json"], tmp_path).stdout)
    assert [(r["number"], r["status"]) for r in listed] == [(1, "approved")]
    bad = run(["deploy", "request", "payments-api", IMAGE, "--group", "qa"], tmp_path)
    assert bad.returncode == 2 and "unknown environment group 'qa'" in bad.stderr
    stranger = run(["deploy", "status", "1", "--as", "x"], tmp_path)
    assert stranger.returncode == 2  # status takes no --as: click refuses the option


def test_fast_track_and_review(tmp_path: Path) -> None:
    assert run(["sample"], tmp_path).returncode == 0
    run(["deploy", "request", "payments-api", IMAGE, "--group", "prod"], tmp_path)
    fast = run(
        ["deploy", "fast-track", "1", "--reason", "outage", "--incident", "INC-9", "--as",
         "soyeon.lee"],
        tmp_path,
    )  # fmt: skip
    assert fast.returncode == 0, fast.stderr
    assert "(fast-tracked)" in fast.stdout and "review: DUE" in fast.stdout
    done = run(["deploy", "review", "1", "--note", "fine", "--as", "sungmin.oh"], tmp_path)
    assert done.returncode == 0, done.stderr
    assert "review: DUE" not in run(["deploy", "status", "1"], tmp_path).stdout
