"""Point-in-time recovery end to end on a throwaway PostgreSQL cluster (fsync on).

Figures: a base backup of a cluster holding --seed-mb of rows (pg_basebackup, then
pg_verifybackup); --mb of writes archived through the documented archive_command (`python
-m timbel_dagster.warehouse.backup.archive_command`), with the moment noted half way; then
`recover_to_time` to that moment with the server started, in its parts: the checks
(pg_verifybackup, the archive's segments, the newest commit by pg_waldump), the copy, and
the server's replay until promoted; the whole recovery against the time the first half of
the writes took (the WAL it replays). The recovered rows are checked to be exactly those
before the moment. Beside them, the cost of one `timbel backup archive-wal` per 16 MiB
segment against `cp` + `sync` of the same file.
Needs root (the server runs as `postgres` through runuser) and PostgreSQL 15's programs.

    .venv/bin/python -m benchmarks.pitr [--mb 256] [--seed-mb 64]
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from benchmarks.common import report

ROW_BYTES = 1000  # the payload of one row; a batch is one transaction
BATCH_ROWS = 20_000


def _insert(cluster, first: int, rows: int) -> None:
    for start in range(first, first + rows, BATCH_ROWS):
        end = min(start + BATCH_ROWS, first + rows) - 1
        cluster.sql(
            f"INSERT INTO load SELECT g, repeat(md5(g::text), {ROW_BYTES // 32}) "
            f"FROM generate_series({start}, {end}) g"
        )


def _archive_wal_cost(runs: int = 5) -> dict[str, float]:
    """Median seconds to archive one 16 MiB segment, each a new process as archive_command
    runs it: `timbel backup archive-wal`, `python -m ...archive_command`, and `cp` + `sync`."""
    timbel = str(Path(sys.executable).with_name("timbel"))
    module = [sys.executable, "-m", "timbel_dagster.warehouse.backup.archive_command"]
    work = Path(tempfile.mkdtemp(prefix="timbel-bench-wal-"))
    try:
        segment = work / "000000010000000000000042"
        segment.write_bytes(os.urandom(16 << 20))
        commands = {
            "cli": lambda out: [timbel, "backup", "archive-wal", str(segment), segment.name,
                                "--wal-dir", str(out)],
            "module": lambda out: [*module, str(segment), segment.name, str(out)],
            "cp": lambda out: ["sh", "-c", f"cp {segment} {out}/ && sync {out}/{segment.name}"],
        }  # fmt: skip
        seconds: dict[str, list[float]] = {name: [] for name in commands}
        for n in range(runs):
            for name, command in commands.items():
                out = work / f"{name}{n}"
                out.mkdir()
                started = time.perf_counter()
                subprocess.run(command(out), check=True)
                seconds[name].append(time.perf_counter() - started)
        return {name: statistics.median(values) for name, values in seconds.items()}
    finally:
        shutil.rmtree(work, ignore_errors=True)


def main() -> int:
    # lazy: as the other benchmarks, the test services and the product load when run
    from tests.services.postgres_cluster import OS_USER, free_port, throwaway_cluster
    from timbel_dagster.warehouse.backup.basebackup import take_base_backup
    from timbel_dagster.warehouse.backup.pitr import recover_to_time

    parser = argparse.ArgumentParser()
    parser.add_argument("--mb", type=int, default=256, help="MB of rows written after the base")
    parser.add_argument("--seed-mb", type=int, default=64, help="MB of rows before the base")
    options = parser.parse_args()
    per_mb = (1 << 20) // ROW_BYTES
    seed, rows = options.seed_mb * per_mb, options.mb * per_mb

    with throwaway_cluster(fsync=True) as cluster:
        cluster.sql("CREATE TABLE load (id int PRIMARY KEY, payload text NOT NULL)")
        _insert(cluster, 1, seed)
        started = time.perf_counter()
        base = take_base_backup(cluster.url, cluster.root / "base-backups", bindir=None)
        base_seconds = time.perf_counter() - started
        report("pitr_base_backup", base_seconds, "s")
        report("pitr_base_backup_size", base["size"] / (1 << 20), "MiB")

        ((wal_before,),) = cluster.sql("SELECT pg_current_wal_lsn()")
        started = time.perf_counter()
        _insert(cluster, seed + 1, rows // 2)
        first_half = time.perf_counter() - started
        ((noted, wal_noted),) = cluster.sql("SELECT clock_timestamp(), pg_current_wal_lsn()")
        _insert(cluster, seed + 1 + rows // 2, rows - rows // 2)
        cluster.switch_and_archive()
        write_seconds = time.perf_counter() - started
        ((wal_bytes,),) = cluster.sql(
            f"SELECT pg_wal_lsn_diff(pg_current_wal_lsn(), '{wal_before}')"
        )
        ((replayed,),) = cluster.sql(
            f"SELECT pg_wal_lsn_diff('{wal_noted}', '{base['start_lsn']}')"
        )
        report("pitr_writes", write_seconds, "s")
        report("pitr_wal_archived", float(wal_bytes) / (1 << 20), "MiB")
        report("pitr_wal_to_replay", float(replayed) / (1 << 20), "MiB")

        marks: list[tuple[str, float]] = []
        started = time.perf_counter()
        done = recover_to_time(
            noted.isoformat(),
            cluster.root / "recovered",
            base_dir=cluster.root / "base-backups",
            wal_dir=cluster.archive,
            bindir=None,
            start=True,
            port=free_port(),
            os_user=OS_USER,
            progress=lambda line: marks.append((line.split()[0], time.perf_counter())),
        )
        total = time.perf_counter() - started
        at = dict(marks)
        checks = at["copying"] - started
        copy = at["starting"] - at["copying"]
        replay = total - (at["starting"] - started)
        found = cluster.sql("SELECT count(*), max(id) FROM load", port=done["port"])
        if found != [(seed + rows // 2, seed + rows // 2)]:
            print(f"recovered {found}, expected {seed + rows // 2} rows", file=sys.stderr)
            return 1
        report("pitr_recovery_checks", checks, "s")
        report("pitr_recovery_copy", copy, "s")
        report("pitr_recovery_replay", replay, "s")
        report("pitr_recovery_total", total, "s", total / first_half, "writing what it replays")
        report(
            "pitr_end_to_end",
            base_seconds + write_seconds + total,
            "s",
        )
    cost = _archive_wal_cost()
    for name, label in (("module", "archive_command_module"), ("cli", "archive_wal_cli")):
        report(f"{label}_per_segment", cost[name], "s", cost[name] / cost["cp"], "cp + sync")
    return 0


if __name__ == "__main__":
    sys.exit(main())
