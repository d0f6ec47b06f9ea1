"""The fixed cast of the sample organisation: its people, clusters and services.

Everything here is sample data and is only ever written with `source='sample'`. The URLs use
the reserved `.invalid` domain so that nothing can mistake them for a real server.
"""

from __future__ import annotations

from dataclasses import dataclass

from timbel_dagster.records.delivery import ClusterRecord, UserRecord

SAMPLE_SOURCE = "sample"
SAMPLE_DOMAIN = "sample.invalid"


@dataclass(frozen=True)
class SampleService:
    name: str
    team: str
    ci_system: str  # jenkins | gitlab
    commits_per_weekday: float  # mean of a Poisson draw
    build_minutes: float  # median duration of the build stage
    test_minutes: float  # median duration of each parallel test branch
    risk_bias: float  # added to the failure log-odds: some services are simply harder


SERVICES: tuple[SampleService, ...] = (
    SampleService("payments-api", "payments", "jenkins", 3.2, 6.0, 9.0, 0.4),
    SampleService("billing-worker", "payments", "jenkins", 1.6, 4.0, 6.0, 0.2),
    SampleService("ledger-service", "payments", "gitlab", 1.2, 5.0, 11.0, 0.5),
    SampleService("checkout-web", "commerce", "gitlab", 3.8, 3.0, 5.0, 0.0),
    SampleService("catalog-api", "commerce", "jenkins", 2.4, 4.5, 6.5, -0.2),
    SampleService("search-indexer", "commerce", "gitlab", 1.4, 7.0, 8.0, 0.1),
    SampleService("cart-service", "commerce", "jenkins", 2.0, 3.5, 4.5, -0.1),
    SampleService("auth-gateway", "platform", "gitlab", 1.1, 4.0, 7.0, 0.3),
    SampleService("notification-hub", "platform", "jenkins", 1.3, 3.0, 4.0, -0.3),
    SampleService("ml-scoring", "data", "gitlab", 0.9, 12.0, 10.0, 0.6),
    SampleService("etl-scheduler", "data", "jenkins", 1.0, 5.5, 5.5, 0.2),
    SampleService("web-frontend", "commerce", "gitlab", 4.2, 5.0, 7.5, 0.1),
)

# The stage whose duration regresses part-way through the window, and the flaky stage.
REGRESSED = ("payments-api", "integration-tests")
REGRESSION_DAY = 58  # of 90: the regression begins this many days into the window
REGRESSION_FACTOR = 1.8
FLAKY = ("web-frontend", "e2e-tests")
FLAKY_FAILURE_RATE = 0.14

CLUSTERS: tuple[ClusterRecord, ...] = (
    ClusterRecord("seoul-dev-01", "dev", f"https://dev-01.k8s.{SAMPLE_DOMAIN}:6443", "1.30"),
    ClusterRecord("seoul-stg-01", "staging", f"https://stg-01.k8s.{SAMPLE_DOMAIN}:6443", "1.30"),
    ClusterRecord("seoul-prod-01", "prod", f"https://prod-01.k8s.{SAMPLE_DOMAIN}:6443", "1.29"),
)

_PEOPLE = (
    ("minji.kim", "Minji Kim", "developer", "payments"),
    ("jaehyun.park", "Jaehyun Park", "developer", "payments"),
    ("soyeon.lee", "Soyeon Lee", "team_lead", "payments"),
    ("dongwook.choi", "Dongwook Choi", "developer", "commerce"),
    ("hana.jung", "Hana Jung", "developer", "commerce"),
    ("taeyang.kang", "Taeyang Kang", "developer", "commerce"),
    ("yuna.cho", "Yuna Cho", "team_lead", "commerce"),
    ("seojun.yoon", "Seojun Yoon", "developer", "platform"),
    ("jiwoo.jang", "Jiwoo Jang", "team_lead", "platform"),
    ("eunji.lim", "Eunji Lim", "developer", "data"),
    ("hyunwoo.han", "Hyunwoo Han", "team_lead", "data"),
    ("sungmin.oh", "Sungmin Oh", "operations", "platform"),
    ("daeun.seo", "Daeun Seo", "operations", "platform"),
    ("admin", "Timbel Administrator", "admin", "platform"),
)

USERS: tuple[UserRecord, ...] = tuple(
    UserRecord(
        name=name,
        display_name=display,
        email=f"{name}@{SAMPLE_DOMAIN}",
        role=role,
        team=team,
        slack_id=f"U{index:08d}",
    )
    for index, (name, display, role, team) in enumerate(_PEOPLE, start=1)
)


def developers_of(team: str) -> list[str]:
    """The developers (and their lead, who also commits) of a team."""
    return [u.name for u in USERS if u.team == team and u.role in ("developer", "team_lead")]


def repository_of(service: SampleService) -> str:
    return f"https://git.{SAMPLE_DOMAIN}/{service.team}/{service.name}.git"


def pipeline_name_of(service: SampleService) -> str:
    """Jenkins multibranch jobs are `service/main`; GitLab pipelines belong to `team/service`."""
    if service.ci_system == "jenkins":
        return f"{service.name}/main"
    return f"{service.team}/{service.name}"


def pipeline_url_of(service: SampleService) -> str:
    if service.ci_system == "jenkins":
        return f"https://jenkins.{SAMPLE_DOMAIN}/job/{service.name}/job/main/"
    return f"https://gitlab.{SAMPLE_DOMAIN}/{service.team}/{service.name}/-/pipelines"
