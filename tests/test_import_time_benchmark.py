"""benchmarks/import_time.py compares bytecode with bytecode, as a deployed image loads."""

from __future__ import annotations

import subprocess
import sys

import pytest

from benchmarks.import_time import _sample, environment


def test_the_samples_load_our_modules_from_bytecode_even_where_writing_it_is_off(
    monkeypatch: pytest.MonkeyPatch, tmp_path
) -> None:
    monkeypatch.setenv("PYTHONDONTWRITEBYTECODE", "1")
    env = environment(str(tmp_path))
    assert "PYTHONDONTWRITEBYTECODE" not in env
    subprocess.run(
        [sys.executable, "-c", "import timbel_dagster.records.delivery"],
        env=env,
        check=True,
        timeout=60,
    )
    assert list(tmp_path.rglob("timbel_dagster/records/delivery.*.pyc"))


def test_a_sample_measures_wall_and_cpu_time(tmp_path) -> None:
    """CPU time too: a loaded machine stretches wall time far more than the work done."""
    wall, cpu = _sample("json", environment(str(tmp_path)))
    assert wall > 0 and cpu > 0
