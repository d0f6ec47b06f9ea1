from __future__ import annotations

import re
from pathlib import Path

import dagster as dg
import pytest
from sqlalchemy import select

from timbel_dagster.bindings.warehouse import WarehouseResource
from timbel_dagster.definitions import build_definitions
from timbel_dagster.resources.clusters_file import ClustersFileError, load_clusters
from timbel_dagster.resources.sources import DeliverySourcesResource
from timbel_dagster.warehouse.engine import get_engine
from timbel_dagster.warehouse.schema.models import Cluster

defs = build_definitions()  # the code location, partitions from the default start

GOOD = """\
clusters:
  - name: seoul-dev-01
    group: dev
    context: dev-admin
  - name: seoul-prod-01
    group: prod
    api_url: https://prod-01.k8s.example.com:6443
    token_env: PROD_01_TOKEN
    kubernetes_version: 1.29
"""


def _file(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "clusters.yaml"
    path.write_text(text)
    return path


def test_a_good_file(tmp_path: Path) -> None:
    clusters = load_clusters(_file(tmp_path, GOOD))
    assert [(c.name, c.group, c.context) for c in clusters] == [
        ("seoul-dev-01", "dev", "dev-admin"),
        ("seoul-prod-01", "prod", None),
    ]
    assert clusters[1].kubernetes_version == "1.29" and clusters[1].token_env == "PROD_01_TOKEN"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("clusters: {}", "expected a top-level 'clusters:' list"),
        ("clusters: [oops", "not valid YAML"),
        ("clusters:\n  - group: dev\n    context: x\n", "clusters[0]: 'name' is required"),
        (
            "clusters:\n  - name: a\n    group: qa\n    context: x\n",
            "clusters[0] (a): 'group' must be one of dev, staging, prod, not 'qa'",
        ),
        (
            "clusters:\n  - name: a\n    group: dev\n",
            "clusters[0] (a): give 'context' or 'api_url'",
        ),
        (
            "clusters:\n  - name: a\n    group: dev\n    api_url: prod-01:6443\n",
            "'api_url' must be an http(s) URL",
        ),
        (
            "clusters:\n  - name: a\n    group: dev\n    context: x\n    token: s3cret\n",
            "clusters[0]: unknown key(s) token",
        ),
        (
            "clusters:\n  - {name: a, group: dev, context: x}\n"
            "  - {name: a, group: prod, context: y}\n",
            "cluster name(s) used twice: a",
        ),
    ],
)
def test_bad_files_name_the_entry_and_the_problem(tmp_path: Path, text: str, message: str) -> None:
    with pytest.raises(ClustersFileError, match=re.escape(message)):
        load_clusters(_file(tmp_path, text))


def test_a_missing_file_names_the_setting(tmp_path: Path) -> None:
    with pytest.raises(ClustersFileError, match="TIMBEL_CLUSTERS_FILE: cannot read"):
        load_clusters(tmp_path / "nope.yaml")


def test_live_mode_clusters_come_from_the_file(tmp_path: Path, warehouse_url: str) -> None:
    path = _file(tmp_path, GOOD)
    result = dg.materialize(
        list(defs.assets or []),
        resources={
            "warehouse": WarehouseResource(database_url=warehouse_url),
            "sources": DeliverySourcesResource(mode="live", clusters_file=str(path)),
        },
        selection=dg.AssetSelection.assets(["org", "clusters"]).required_multi_asset_neighbors(),
    )
    assert result.success
    with get_engine(warehouse_url).connect() as connection:
        rows = connection.execute(
            select(Cluster.name, Cluster.environment_group, Cluster.source).order_by(Cluster.name)
        ).all()
    assert rows == [
        ("seoul-dev-01", "dev", "clusters-file"),
        ("seoul-prod-01", "prod", "clusters-file"),
    ]
