"""Partitions begin where the data begins: in sample mode, on the sample's first day (unless
TIMBEL_HISTORY_START says otherwise), and every partitioned asset says why most of its
partitions stay empty."""

from __future__ import annotations

import datetime as dt
import os
import subprocess
import sys

import pytest

from timbel_dagster.definitions import build_definitions, history_start
from timbel_dagster.settings import Settings

END = dt.date(2026, 11, 1)
SAMPLE_FIRST_DAY = dt.date(2026, 8, 2)  # the sample's 90 days and one before, up to END


@pytest.mark.parametrize(
    ("values", "sample", "start"),
    [
        ({"timbel_sample_data": True}, None, SAMPLE_FIRST_DAY),
        ({"timbel_sample_data": False}, None, dt.date(2010, 1, 1)),
        ({"timbel_sample_data": False}, True, SAMPLE_FIRST_DAY),  # `timbel demo`
        ({"timbel_sample_data": True, "timbel_history_start": dt.date(2020, 5, 1)}, None, None),
    ],
)
def test_history_start(values: dict, sample: bool | None, start: dt.date | None) -> None:
    settings = Settings(timbel_sample_end_date=END, **values)
    assert history_start(settings, sample) == (start or values["timbel_history_start"])


def test_partitioned_assets_say_why_most_partitions_are_empty() -> None:
    graph = build_definitions().resolve_asset_graph()
    partitioned = [
        graph.get(key)
        for key in graph.get_all_asset_keys()
        if graph.get(key).partitions_def is not None and key.path[0] != "audit"
    ]
    assert len(partitioned) == 8
    for node in partitioned:
        assert "from 2010-01-01 (TIMBEL_HISTORY_START" in node.description or (
            "start on 2010-01-01 (TIMBEL_HISTORY_START" in node.description
        ), node.key
        assert "that is not a failure" in node.description, node.key


def test_the_code_location_in_sample_mode_starts_on_the_sample_first_day() -> None:
    code = (
        "import dagster as dg\n"
        "from timbel_dagster.definitions import defs\n"
        "graph = defs().resolve_asset_graph()\n"
        "node = graph.get(dg.AssetKey(['cicd', 'pipeline_executions']))\n"
        "print(node.partitions_def.get_first_partition_key())\n"
        "print(node.description)"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("TIMBEL_")}
    env |= {"TIMBEL_SAMPLE_DATA": "true", "TIMBEL_SAMPLE_END_DATE": END.isoformat()}
    first, description = (
        subprocess.run(
            [sys.executable, "-W", "ignore", "-c", code],
            capture_output=True,
            text=True,
            env=env,
            timeout=120,
            check=True,
        )
        .stdout.strip()
        .split("\n", 1)
    )
    assert first == SAMPLE_FIRST_DAY.isoformat()
    assert f"Partitions start on {SAMPLE_FIRST_DAY} (TIMBEL_HISTORY_START; in sample mode" in (
        description
    )
