"""POST /webhooks/gitlab: the Pipeline Hook's execution row is stored at once through the
ingestion's own upsert, the delivery is recorded once, a Job Hook is recorded only."""

from __future__ import annotations

import copy
import json

from sqlalchemy import select

from tests.api.webhooks.conftest import SECRETS, count, deliveries, fixture
from timbel_dagster.warehouse.schema.models import Pipeline, PipelineExecution, StageExecution

URL = "/api/v1/webhooks/gitlab"


def headers(event: str = "Pipeline Hook", uuid: str = "0d4bc1d4-0b6c-4c4b-9a8d-7a3c1e2f9b10"):
    return {
        "X-Gitlab-Token": SECRETS["gitlab_webhook_secret"],
        "X-Gitlab-Event": event,
        "X-Gitlab-Webhook-UUID": uuid,
        "Content-Type": "application/json",
    }


def executions(engine) -> list[dict]:
    with engine.connect() as connection:
        query = select(
            PipelineExecution.external_id,
            PipelineExecution.status,
            PipelineExecution.started_at,
            PipelineExecution.completed_at,
            PipelineExecution.commit_sha,
            PipelineExecution.branch,
            PipelineExecution.url,
            PipelineExecution.source,
            PipelineExecution.error_message,
        )
        return [dict(row._mapping) for row in connection.execute(query)]


def test_pipeline_hook_stores_the_execution_with_its_jobs_and_records_the_delivery(
    hooked, engine
) -> None:
    body = json.dumps(fixture("gitlab", "hooks", "pipeline_hook.json"))
    response = hooked.post(URL, content=body, headers=headers())
    assert response.status_code == 202, response.text
    assert response.json()["status"] == "accepted"
    [row] = executions(engine)
    assert row["external_id"] == "31"
    assert row["status"] == "failed"
    assert row["source"] == "gitlab"
    assert row["commit_sha"] == "bcbb5ec396a2c0f828686f14fac9b80b780504f2"
    assert row["branch"] == "master"
    assert row["url"] == "http://example.com/gitlab-org/gitlab-test/-/pipelines/31"
    assert row["error_message"] == "job(s) failed: test-build"
    # Timed by its jobs, as the poller times it: first start 15:24:56, last end 15:26:29.
    assert row["started_at"].replace(tzinfo=None).isoformat() == "2016-08-12T15:24:56"
    assert row["completed_at"].replace(tzinfo=None).isoformat() == "2016-08-12T15:26:29"
    assert count(engine, StageExecution.__table__) == 4
    with engine.connect() as connection:
        assert connection.execute(select(Pipeline.name, Pipeline.service)).all() == [
            ("gitlab-org/gitlab-test", "gitlab-test")
        ]
    assert deliveries(engine, "gitlab") == [
        {"delivery_key": "0d4bc1d4-0b6c-4c4b-9a8d-7a3c1e2f9b10", "event": "Pipeline Hook",
         "subject": "gitlab-org/gitlab-test", "status": "pending"}
    ]  # fmt: skip


def test_a_later_status_of_the_same_pipeline_updates_its_row(hooked, engine) -> None:
    running = fixture("gitlab", "hooks", "pipeline_hook.json")
    running["object_attributes"] |= {"status": "running", "finished_at": None}
    hooked.post(URL, content=json.dumps(running), headers=headers(uuid="first"))
    assert executions(engine)[0]["status"] == "running"
    done = copy.deepcopy(running)
    done["object_attributes"]["status"] = "success"
    response = hooked.post(URL, content=json.dumps(done), headers=headers(uuid="second"))
    assert response.status_code == 202
    assert [r["status"] for r in executions(engine)] == ["success"]
    assert len(deliveries(engine, "gitlab")) == 2


def test_idempotency_key_is_preferred_over_the_uuid(hooked, engine) -> None:
    body = json.dumps(fixture("gitlab", "hooks", "pipeline_hook.json"))
    first = hooked.post(URL, content=body, headers=headers(uuid="a") | {"Idempotency-Key": "k1"})
    again = hooked.post(URL, content=body, headers=headers(uuid="b") | {"Idempotency-Key": "k1"})
    assert (first.status_code, again.status_code) == (202, 200)
    assert again.json() == {"status": "duplicate", "delivery_key": "k1", "detail": None}
    assert [d["delivery_key"] for d in deliveries(engine, "gitlab")] == ["k1"]


def test_without_any_id_the_body_digest_de_duplicates(hooked, engine) -> None:
    body = json.dumps(fixture("gitlab", "hooks", "pipeline_hook.json"))
    plain = {k: v for k, v in headers().items() if k != "X-Gitlab-Webhook-UUID"}
    assert hooked.post(URL, content=body, headers=plain).status_code == 202
    assert hooked.post(URL, content=body, headers=plain).json()["status"] == "duplicate"
    [delivery] = deliveries(engine, "gitlab")
    assert delivery["delivery_key"].startswith("sha256:")


def test_job_hook_is_recorded_for_the_sensor_and_stores_no_execution(hooked, engine) -> None:
    body = json.dumps(fixture("gitlab", "hooks", "job_hook.json"))
    response = hooked.post(URL, content=body, headers=headers("Job Hook", "job-1"))
    assert response.status_code == 202
    assert executions(engine) == []
    assert deliveries(engine, "gitlab")[0]["subject"] == "gitlab-org/gitlab-test"


def test_job_hook_without_project_object_takes_the_path_from_the_repository(hooked, engine):
    data = fixture("gitlab", "hooks", "job_hook.json")
    del data["project"]
    response = hooked.post(URL, content=json.dumps(data), headers=headers("Job Hook", "job-2"))
    assert response.status_code == 202
    assert deliveries(engine, "gitlab")[0]["subject"] == "gitlab-org/gitlab-test"


def test_other_events_are_ignored_and_record_nothing(hooked, engine) -> None:
    response = hooked.post(URL, content=b"{}", headers=headers("Push Hook"))
    assert response.status_code == 202
    assert response.json()["status"] == "ignored"
    assert deliveries(engine, "gitlab") == []


def test_a_pipeline_hook_without_its_project_is_422_and_stores_nothing(hooked, engine) -> None:
    data = fixture("gitlab", "hooks", "pipeline_hook.json")
    del data["project"]
    response = hooked.post(URL, content=json.dumps(data), headers=headers())
    assert response.status_code == 422
    assert "project" in response.json()["detail"]
    assert deliveries(engine, "gitlab") == [] and executions(engine) == []


def test_a_body_that_is_not_json_is_400(hooked, engine) -> None:
    response = hooked.post(URL, content=b"{not json", headers=headers())
    assert response.status_code == 400
    assert response.headers["content-type"] == "application/problem+json"


def test_a_late_running_event_does_not_undo_a_finished_pipeline(hooked, engine) -> None:
    done = fixture("gitlab", "hooks", "pipeline_hook.json")
    done["object_attributes"]["status"] = "success"
    late = copy.deepcopy(done)
    late["object_attributes"] |= {"status": "running", "finished_at": None}
    hooked.post(URL, content=json.dumps(done), headers=headers(uuid="done"))
    response = hooked.post(URL, content=json.dumps(late), headers=headers(uuid="late"))
    assert response.status_code == 202  # recorded for the sensor, the row left as it was
    assert [r["status"] for r in executions(engine)] == ["success"]
    assert len(deliveries(engine, "gitlab")) == 2
