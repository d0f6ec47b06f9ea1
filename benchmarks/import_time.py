"""Import time of the code location against `import dagster` alone, measured side by side.

Each sample is a fresh interpreter; the two imports alternate so that machine noise hits both
alike. Target (issue 2): at most 1.5x.

Both load from bytecode, as in a deployed image (`pip install .` compiles it): the samples
write and read it in a scratch PYTHONPYCACHEPREFIX even where PYTHONDONTWRITEBYTECODE is set,
which would otherwise compile every module of ours from source in every sample while
Dagster's come compiled (about 0.1 s of the location's figure on a loaded 2-core machine).
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import tempfile

from benchmarks.common import report

# Wall time, and the interpreter's CPU time, which a loaded machine inflates far less.
_PROBE = (
    "import time; t, c = time.perf_counter(), time.process_time(); import {module}; "
    "print(time.perf_counter() - t, time.process_time() - c)"
)


def environment(pycache: str) -> dict[str, str]:
    """The samples' environment: bytecode written to and read from `pycache`."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    return {**env, "PYTHONPYCACHEPREFIX": pycache}


def _sample(module: str, env: dict[str, str]) -> tuple[float, float]:
    completed = subprocess.run(
        [sys.executable, "-c", _PROBE.format(module=module)],
        capture_output=True,
        text=True,
        env=env,
        check=True,
    )
    wall, cpu = completed.stdout.split()
    return float(wall), float(cpu)


def main(samples: int = 7) -> None:
    with tempfile.TemporaryDirectory(prefix="timbel-pycache-") as pycache:
        env = environment(pycache)
        _sample("timbel_dagster.definitions", env)  # warm the file cache and bytecode once
        dagster, location = [], []
        for _ in range(samples):
            dagster.append(_sample("dagster", env))
            location.append(_sample("timbel_dagster.definitions", env))
    baseline, ours = (statistics.median(wall for wall, _ in s) for s in (dagster, location))
    report("import_dagster_seconds", baseline, "s")
    report("import_timbel_definitions_seconds", ours, "s", ours / baseline, "import dagster")
    baseline, ours = (statistics.median(cpu for _, cpu in s) for s in (dagster, location))
    report("import_dagster_cpu_seconds", baseline, "s")
    report("import_timbel_definitions_cpu_seconds", ours, "s", ours / baseline, "import dagster")


if __name__ == "__main__":
    main()
