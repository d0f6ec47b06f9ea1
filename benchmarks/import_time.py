"""Import time of the code location against `import dagster` alone, measured side by side.

Each sample is a fresh interpreter; the two imports alternate so that machine noise hits both
alike. Target (issue 2): at most 1.5x.
"""

from __future__ import annotations

import statistics
import subprocess
import sys

from benchmarks.common import report

_PROBE = "import time; t = time.perf_counter(); import {module}; print(time.perf_counter() - t)"


def _sample(module: str) -> float:
    completed = subprocess.run(
        [sys.executable, "-c", _PROBE.format(module=module)],
        capture_output=True,
        text=True,
        check=True,
    )
    return float(completed.stdout.strip())


def main(samples: int = 7) -> None:
    _sample("timbel_dagster.definitions")  # warm the file cache and bytecode once
    dagster, location = [], []
    for _ in range(samples):
        dagster.append(_sample("dagster"))
        location.append(_sample("timbel_dagster.definitions"))
    baseline, ours = statistics.median(dagster), statistics.median(location)
    report("import_dagster_seconds", baseline, "s")
    report("import_timbel_definitions_seconds", ours, "s", ours / baseline, "import dagster")


if __name__ == "__main__":
    main()
