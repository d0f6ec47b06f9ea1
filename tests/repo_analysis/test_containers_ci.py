"""Dockerfiles, Helm charts, Kubernetes manifests, Compose files and CI definitions."""

from __future__ import annotations

import pytest

from tests.repo_analysis.helpers import manifest, tool_paths
from timbel_dagster.repo_analysis.ci_files import ci_system
from timbel_dagster.repo_analysis.dockerfiles import is_dockerfile, parse_dockerfile

MULTI_STAGE = """
    # syntax=docker/dockerfile:1
    ARG GO_VERSION=1.21
    ARG REGISTRY
    ARG DISTROLESS=gcr.io/distroless/static-debian12
    FROM --platform=$BUILDPLATFORM golang:${GO_VERSION}-alpine AS build
    WORKDIR /src
    RUN <<EOF
    FROM this-is-not-an-instruction
    EOF
    RUN apk add --no-cache \\
        git \\
        make
    FROM build AS test
    RUN go test ./...
    FROM ${REGISTRY}/tools:latest AS tools
    FROM ${DISTROLESS:-scratch}
    COPY --from=build /out/app /app
"""


def test_dockerfile_stages_arguments_and_base_images() -> None:
    import textwrap

    stages = parse_dockerfile(textwrap.dedent(MULTI_STAGE))

    assert stages == [
        {
            "index": 0,
            "name": "build",
            "base": "golang:1.21-alpine",
            "platform": "$BUILDPLATFORM",
            "from_stage": None,
        },
        {"index": 1, "name": "test", "base": "build", "platform": None, "from_stage": "build"},
        {
            "index": 2,
            "name": "tools",
            "base": "${REGISTRY}/tools:latest",
            "platform": None,
            "from_stage": None,
        },
        {
            "index": 3,
            "name": None,
            "base": "gcr.io/distroless/static-debian12",
            "platform": None,
            "from_stage": None,
        },
    ]


def test_dockerfiles_in_the_analysis(analyse) -> None:
    analysis = analyse(
        {
            "Dockerfile": MULTI_STAGE,
            "docker/api.Dockerfile": "FROM node:20-slim\nFROM scratch\n",
            "Dockerfile.broken": "RUN echo no base\n",
        }
    )

    assert analysis.dockerfiles == [
        {
            "path": "Dockerfile",
            "stages": parse_dockerfile(MULTI_STAGE.replace("    ", "")),
            "base_images": [
                "golang:1.21-alpine",
                "${REGISTRY}/tools:latest",
                "gcr.io/distroless/static-debian12",
            ],
        },
        {
            "path": "docker/api.Dockerfile",
            "stages": parse_dockerfile("FROM node:20-slim\nFROM scratch\n"),
            "base_images": ["node:20-slim"],
        },
    ]
    assert manifest(analysis, "Dockerfile.broken")["error"] == (
        "Dockerfile.broken: no FROM instruction"
    )


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("Dockerfile", True),
        ("Containerfile", True),
        ("Dockerfile.prod", True),
        ("api.Dockerfile", True),
        ("worker.dockerfile", True),
        ("Dockerfile-notes.md", False),
        ("dockerfile.go", False),
    ],
)
def test_is_dockerfile(name: str, expected: bool) -> None:
    assert is_dockerfile(name) is expected


CHART = {
    "charts/shop/Chart.yaml": """
        apiVersion: v2
        name: shop
        version: 0.4.1
        appVersion: "2.3.0"
        dependencies:
          - name: postgresql
            version: 13.2.24
            repository: oci://registry-1.docker.io/bitnamicharts
    """,
    "charts/shop/values.yaml": """
        image:
          repository: registry.example.com/shop/api
          tag: ""
        worker:
          image: registry.example.com/shop/worker:1.0.0
        redis:
          image:
            registry: docker.io
            repository: bitnami/redis
            tag: 7.2.3
        sidecar:
          image:
            repository: envoyproxy/envoy
            digest: sha256:0123
    """,
    "charts/shop/templates/deployment.yaml": """
        apiVersion: apps/v1
        kind: Deployment
        metadata:
          name: {{ include "shop.fullname" . }}
        spec:
          template:
            spec:
              containers:
                - image: "{{ .Values.image.repository }}:{{ .Values.image.tag }}"
    """,
}
K8S = """
    apiVersion: apps/v1
    kind: Deployment
    metadata:
      name: api
      namespace: shop
    spec:
      template:
        spec:
          initContainers:
            - name: migrate
              image: registry.example.com/shop/migrate:2.3.0
          containers:
            - name: api
              image: registry.example.com/shop/api:2.3.0
    ---
    apiVersion: batch/v1
    kind: CronJob
    metadata:
      name: report
    spec:
      jobTemplate:
        spec:
          template:
            spec:
              containers:
                - name: report
                  image: busybox:1.36
    ---
    # an empty document
    ---
    apiVersion: v1
    kind: List
    items:
      - apiVersion: v1
        kind: Service
        metadata:
          name: api
"""


def test_helm_chart_and_kubernetes_manifests(analyse) -> None:
    analysis = analyse(
        {
            **CHART,
            "k8s/app.yaml": K8S,
            "k8s/kustomization.yaml": "resources:\n  - app.yaml\n",
            "config/settings.yml": "kind: of-a-setting\nname: not kubernetes\n",
            "k8s/broken.yaml": "apiVersion: v1\nkind: ConfigMap\ndata: [unclosed\n",
        }
    )

    chart = manifest(analysis, "charts/shop/Chart.yaml")
    assert chart["name"] == "shop"
    assert (chart["version"], chart["app_version"]) == ("0.4.1", "2.3.0")
    assert chart["dependencies"] == [
        {
            "name": "postgresql",
            "version": "13.2.24",
            "repository": "oci://registry-1.docker.io/bitnamicharts",
        }
    ]
    assert chart["images"] == [
        "registry.example.com/shop/api:2.3.0",
        "registry.example.com/shop/worker:1.0.0",
        "docker.io/bitnami/redis:7.2.3",
        "envoyproxy/envoy@sha256:0123",
    ]
    kubernetes = manifest(analysis, "k8s/app.yaml")
    assert [(r["kind"], r["name"]) for r in kubernetes["resources"]] == [
        ("Deployment", "api"),
        ("CronJob", "report"),
        ("Service", "api"),
    ]
    assert kubernetes["images"] == [
        "registry.example.com/shop/migrate:2.3.0",
        "registry.example.com/shop/api:2.3.0",
        "busybox:1.36",
    ]
    assert "k8s/broken.yaml" in manifest(analysis, "k8s/broken.yaml")["error"]
    paths = {m["path"] for m in analysis.manifests}
    assert "charts/shop/templates/deployment.yaml" not in paths  # a Go template, not YAML
    assert "config/settings.yml" not in paths
    assert {"name": "helm", "paths": ["charts/shop/Chart.yaml"]} in tool_paths(analysis)


def test_compose_file(analyse) -> None:
    analysis = analyse(
        {
            "docker-compose.yml": """
                services:
                  db:
                    image: postgres:16
                  api:
                    build: .
                  cache:
                    image: redis:7
            """
        }
    )

    entry = manifest(analysis, "docker-compose.yml")
    assert entry["services"] == ["api", "cache", "db"]
    assert entry["images"] == ["postgres:16", "redis:7"]


@pytest.mark.parametrize(
    ("path", "system"),
    [
        ("Jenkinsfile", "jenkins"),
        ("ci/Jenkinsfile.release", "jenkins"),
        ("pipelines/deploy.jenkinsfile", "jenkins"),
        (".gitlab-ci.yml", "gitlab-ci"),
        ("services/api/.gitlab-ci.yml", "gitlab-ci"),
        (".gitlab/ci/build.yml", "gitlab-ci"),
        (".github/workflows/ci.yml", "github-actions"),
        (".github/workflows/release.yaml", "github-actions"),
        ("azure-pipelines.yml", "azure-pipelines"),
        (".circleci/config.yml", "circleci"),
        ("bitbucket-pipelines.yml", "bitbucket-pipelines"),
        (".travis.yml", "travis-ci"),
        (".drone.yml", "drone"),
        (".woodpecker/test.yml", "woodpecker"),
        (".buildkite/pipeline.yml", "buildkite"),
        ("cloudbuild.yaml", "google-cloud-build"),
        ("buildspec.yml", "aws-codebuild"),
        ("appveyor.yml", "appveyor"),
        (".github/dependabot.yml", None),
        ("docs/Jenkinsfile.md", None),
        ("src/workflows/ci.yml", None),
        ("jenkins.txt", None),
    ],
)
def test_ci_system(path: str, system: str | None) -> None:
    assert ci_system(path) == system


def test_ci_files_include_tekton_and_argo_resources(analyse) -> None:
    analysis = analyse(
        {
            ".github/workflows/ci.yml": "on: push\njobs: {}\n",
            "Jenkinsfile": "pipeline { agent any }\n",
            "tekton/pipeline.yaml": """
                apiVersion: tekton.dev/v1
                kind: Pipeline
                metadata:
                  name: build
                spec:
                  tasks: []
            """,
            "argo/workflow.yaml": """
                apiVersion: argoproj.io/v1alpha1
                kind: Workflow
                metadata:
                  generateName: hello-
                spec:
                  templates:
                    - name: main
                      container:
                        image: alpine:3.19
            """,
            "argo/app.yaml": """
                apiVersion: argoproj.io/v1alpha1
                kind: Application
                metadata:
                  name: shop
            """,
        }
    )

    assert analysis.ci_files == [
        {"path": ".github/workflows/ci.yml", "system": "github-actions"},
        {"path": "Jenkinsfile", "system": "jenkins"},
        {"path": "argo/workflow.yaml", "system": "argo-workflows"},
        {"path": "tekton/pipeline.yaml", "system": "tekton"},
    ]
    assert manifest(analysis, "argo/workflow.yaml")["images"] == ["alpine:3.19"]
