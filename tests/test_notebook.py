"""notebooks/delivery_analysis.ipynb: stored clean, and runs headless on the demo's warehouse
(every section with its table and plot) and on an empty or missing one (a hint per section)."""

from __future__ import annotations

import os
import re
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import DemoRun, missing_service

NOTEBOOK = Path(__file__).resolve().parents[1] / "notebooks" / "delivery_analysis.ipynb"
PLOTTING_CELLS = (
    "dora",
    "risk-evaluation",
    "risk-distribution",
    "risk-calibration",
    "stage-share",
    "cost-history",
    "cost-forecast",
    "security",
)


def _read() -> Any:
    import nbformat

    return nbformat.read(NOTEBOOK, as_version=4)


def test_notebook_is_stored_without_outputs() -> None:
    import nbformat

    notebook = _read()
    nbformat.validate(notebook)
    assert notebook.nbformat == 4 and notebook.metadata.kernelspec.name == "python3"
    code = [cell for cell in notebook.cells if cell.cell_type == "code"]
    assert code and all(not c.outputs and c.execution_count is None for c in code)
    assert {c.id for c in code} >= set(PLOTTING_CELLS)


@pytest.fixture
def venv_kernel(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    """A `python3` kernelspec that starts this interpreter (the venv's, where timbel_dagster is
    installed), first on JUPYTER_PATH so no user or system kernel of that name wins."""
    try:
        from ipykernel.kernelspec import install
        from jupyter_client.kernelspec import KernelSpecManager
    except ImportError as error:
        missing_service(f"no Jupyter kernel to run the notebook: {error}")
    install(kernel_name="python3", prefix=str(tmp_path / "kernel"))
    monkeypatch.setenv("JUPYTER_PATH", str(tmp_path / "kernel" / "share" / "jupyter"))
    spec = KernelSpecManager().get_kernel_spec("python3")
    assert Path(spec.argv[0]) == Path(sys.executable)
    return "python3"


def _execute(kernel: str, database_url: str, monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    """Run the notebook on `database_url` as Jupyter would (working directory notebooks/) and
    return its code cells by id; a failing cell raises with its traceback."""
    from nbclient import NotebookClient

    for name in [n for n in os.environ if n.startswith("TIMBEL_")]:
        monkeypatch.delenv(name)
    monkeypatch.setenv("TIMBEL_DATABASE_URL", database_url)
    notebook = _read()
    client = NotebookClient(
        notebook,
        kernel_name=kernel,
        timeout=180,
        resources={"metadata": {"path": str(NOTEBOOK.parent)}},
    )
    client.execute()
    return {cell.id: cell for cell in notebook.cells if cell.cell_type == "code"}


def _text(cell: Any) -> str:
    parts = []
    for output in cell.outputs:
        if output.output_type == "stream":
            parts.append(output.text)
        elif "data" in output:
            parts.append(output.data.get("text/plain", ""))
    return "\n".join(parts)


def _images(cell: Any) -> int:
    return sum("image/png" in output.get("data", {}) for output in cell.outputs)


def test_notebook_runs_on_the_demo_warehouse(
    demo_run: DemoRun, venv_kernel: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert demo_run.completed.returncode == 0, demo_run.completed.stderr
    cells = _execute(venv_kernel, demo_run.warehouse_url, monkeypatch)

    assert re.search(r"risk_training_rows\s+[1-9]\d*", _text(cells["setup"]))
    for cell_id in PLOTTING_CELLS:
        assert _images(cells[cell_id]) == 1, cell_id
    # 90 days of sample history as of today: 13 or 14 calendar weeks, by the weekday.
    assert re.search(r"environment prod: 1[34] weeks", _text(cells["dora"]))
    auc = re.search(
        r"risk_model v\d+ \(\w+\), trained .*: AUC (0\.\d+)", _text(cells["risk-evaluation"])
    )
    assert auc and float(auc[1]) > 0.7
    for ranking in ("lines added (LApredict)", "random forest", "smallest change first"):
        assert ranking in _text(cells["risk-evaluation"])
    assert re.search(
        r"\d+ held-out deployments from \d{4}-\d\d-\d\d, [1-9]\d* failed",
        _text(cells["risk-held-out"]),
    )
    assert "Brier score on the held-out deployments" in _text(cells["risk-calibration"])
    # The demo leaves no request pending.
    assert "No pending deployment requests" in _text(cells["risk-pending"])
    assert re.search(r"[1-9]\d* suggestions; top 10", _text(cells["bottlenecks"]))
    assert "integration-tests" in _text(cells["bottlenecks-regressions"])
    forecast = re.search(
        r"Forecast (\S+) to (\S+): \$([\d,.]+) expected over 720 hours",
        _text(cells["cost-forecast"]),
    )
    assert forecast and float(forecast[3].replace(",", "")) > 0
    assert re.search(r"a month in total", _text(cells["cost-suggestions"]))
    assert re.search(r"[1-9]\d* open findings in [1-9]\d* images", _text(cells["security"]))


@pytest.mark.parametrize("state", ["empty", "missing"])
def test_notebook_says_what_to_run_on_an_empty_warehouse(
    state: str, tmp_path: Path, venv_kernel: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from timbel_dagster.warehouse import migrate

    database = tmp_path / "warehouse.db"
    url = f"sqlite:///{database}"
    if state == "empty":
        migrate.upgrade(url)
    cells = _execute(venv_kernel, url, monkeypatch)

    assert "The warehouse holds no data yet: run `timbel demo`" in _text(cells["setup"])
    assert not any(_images(cell) for cell in cells.values())
    for cell_id in ("dora", "risk-evaluation", "bottlenecks", "cost-history", "security"):
        assert "run `timbel demo`" in _text(cells[cell_id]), cell_id
    # Reading never creates the database.
    assert database.exists() == (state == "empty")
