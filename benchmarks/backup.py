"""Backup and restore of a >= 1 GB PostgreSQL warehouse, against plain `pg_dump | pg_restore`.

A fresh database is migrated to the newest schema and filled server-side (`INSERT ... SELECT
generate_series`) into the real tables: executions with their stages, logs with their chunks
(and the trigram and full-text indexes over them), metric samples. Then, in the same run:

- baseline: `pg_dump --format=custom SRC | pg_restore --no-owner --dbname DST1` (one pipe,
  the two programs overlapping), the same pipe at Timbel's compression level (`--compress=1`),
  and the two one after the other through a file;
- Timbel: `timbel backup create` (pg_dump in the snapshot, per-table checksums beside it,
  AES-256-GCM, SHA-256, into a directory) then `timbel backup restore ID --target DST2`
  (authenticates the whole file, pg_restore --single-transaction, then row counts and
  checksums of every table).

Figures: the database size, each side's seconds, and Timbel's total over the baseline's
(issue 17 target: at most 1.3x with encryption on). `--scale 0.05` is a quick check.
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import subprocess
import sys
import tempfile
import time
from contextlib import ExitStack
from pathlib import Path

from benchmarks.common import report, scratch_postgres

GIB = 1 << 30
# Rows at scale 1: about 1.2 GiB on disk with the indexes.
EXECUTIONS = 500_000
STAGES_PER_EXECUTION = 4
LOGGED_EXECUTIONS = 30_000  # one 2.4 kB log chunk each
SERIES = 1_000
SAMPLES = 2_500_000

FILL = [
    """INSERT INTO pipelines (id, source, ci_system, name, service, repository, default_branch,
           url, created_at, updated_at)
       SELECT md5('p' || p)::uuid, 'bench', 'jenkins', 'service-' || p || '/main',
              'service-' || p, 'git@example.com:s/' || p || '.git', 'main',
              'https://ci.example.com/job/' || p, now(), now()
       FROM generate_series(0, 199) AS p""",
    """INSERT INTO pipeline_executions (id, source, pipeline_id, external_id, sequence,
           triggered_by, status, started_at, completed_at, duration, queue_seconds, artifacts,
           error_message, url, commit_sha, branch, created_at, updated_at)
       SELECT md5('e' || i)::uuid, 'bench', md5('p' || (i % 200))::uuid, i::text, i,
              'user-' || (i % 97),
              CASE WHEN i % 11 = 0 THEN 'failed' ELSE 'success' END,
              timestamptz '2025-01-01' + i * interval '30 seconds',
              timestamptz '2025-01-01' + i * interval '30 seconds' + interval '10 minutes',
              600 + i % 300, 3.5, CAST('{"image": "svc:' || i || '"}' AS {artifacts}),
              CASE WHEN i % 11 = 0 THEN 'integration-tests failed: ' || md5(i::text) END,
              'https://ci.example.com/job/' || (i % 200) || '/' || i,
              md5(i::text) || substr(md5((i + 1)::text), 1, 8), 'main', now(), now()
       FROM generate_series(1, {executions}) AS i""",
    """INSERT INTO stage_executions (id, execution_id, external_id, name, parent_name,
           position, status, started_at, duration, queue_seconds, attempt, error_message,
           created_at, updated_at)
       SELECT md5('s' || i || '-' || s)::uuid, md5('e' || i)::uuid, i || '-' || s,
              (ARRAY['checkout', 'build', 'unit-tests', 'publish-image'])[s + 1],
              CASE WHEN s = 2 THEN 'Tests' END, s,
              CASE WHEN i % 11 = 0 AND s = 2 THEN 'failed' ELSE 'success' END,
              timestamptz '2025-01-01' + i * interval '30 seconds' + s * interval '2 minutes',
              60 + s + i % 7, 1.5, 1, NULL, now(), now()
       FROM generate_series(1, {executions}) AS i, generate_series(0, {last_stage}) AS s""",
    """INSERT INTO execution_logs (execution_id, stream, name, size, lines, complete,
           updated_at)
       SELECT md5('e' || i)::uuid, '', NULL, 2400, 30, true, now()
       FROM generate_series(1, {logged}) AS i""",
    """INSERT INTO execution_log_chunks (execution_id, stream, start_offset, first_line,
           length, content)
       SELECT md5('e' || i)::uuid, '', 0, 1, 2400,
              repeat('[INFO] ' || i || ' compiling module ' || md5(i::text) || E'\\n', 30)
       FROM generate_series(1, {logged}) AS i""",
    """INSERT INTO metric_series (id, name, labels, created_at)
       SELECT md5('m' || m)::uuid, 'node_cpu_seconds_total',
              CAST('{"node": "node-' || m || '"}' AS {labels}), now()
       FROM generate_series(0, {last_series}) AS m""",
    """INSERT INTO metric_samples (series_id, at, value)
       SELECT md5('m' || (k % {series}))::uuid,
              timestamptz '2025-01-01' + (k / {series}) * interval '15 seconds',
              (k % 1000) / 7.0
       FROM generate_series(0, {last_sample}) AS k""",
]


def _column_type(connection, table: str, column: str) -> str:
    return connection.execute(
        "SELECT data_type FROM information_schema.columns "
        "WHERE table_schema = 'public' AND table_name = %s AND column_name = %s",
        (table, column),
    ).fetchone()[0]


def fill(url: str, scale: float) -> int:
    """Migrate `url` and fill it; its size in bytes."""
    import psycopg

    from timbel_dagster.warehouse import migrate
    from timbel_dagster.warehouse.backup.sources import libpq

    migrate.upgrade(url)
    conninfo, environment = libpq(url)
    with psycopg.connect(conninfo, password=environment.get("PGPASSWORD"), autocommit=True) as c:
        values = {
            "executions": int(EXECUTIONS * scale),
            "last_stage": STAGES_PER_EXECUTION - 1,
            "logged": int(LOGGED_EXECUTIONS * scale),
            "series": SERIES,
            "last_series": SERIES - 1,
            "last_sample": int(SAMPLES * scale) - 1,
            "artifacts": _column_type(c, "pipeline_executions", "artifacts"),
            "labels": _column_type(c, "metric_series", "labels"),
        }
        for statement in FILL:
            sql = statement
            for name, value in values.items():
                sql = sql.replace("{" + name + "}", str(value))
            c.execute(sql)
        c.execute("VACUUM ANALYZE")
        return int(c.execute("SELECT pg_database_size(current_database())").fetchone()[0])


def _timed(command: list[str] | str, **options) -> float:
    started = time.perf_counter()
    subprocess.run(command, check=True, **options)  # nosec B603  # fixed programs
    return time.perf_counter() - started


def _pipe(source: str, target: str, environment: dict, options: str = "") -> float:
    """Seconds of `pg_dump --format=custom [options] | pg_restore` from source into target."""
    return _timed(
        f"pg_dump --format=custom {options}--dbname '{source}' | "
        f"pg_restore --no-owner --no-privileges --dbname '{target}'",
        shell=True,  # nosec B602 B604  # our own scratch URLs, a pipe of two fixed programs
        env=environment,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--scale", type=float, default=1.0, help="1.0: about 1.2 GiB")
    args = parser.parse_args()

    from timbel_dagster.warehouse.backup.sources import libpq

    timbel = str(Path(sys.executable).with_name("timbel"))
    with ExitStack() as stack:
        source = stack.enter_context(scratch_postgres())
        plain_target = stack.enter_context(scratch_postgres())
        timbel_target = stack.enter_context(scratch_postgres())
        work = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="bench-backup-")))

        started = time.perf_counter()
        size = fill(source, args.scale)
        report("backup_database_size", size / GIB, "GiB")
        report("backup_fill_seconds", time.perf_counter() - started, "s")

        source_info, environment = libpq(source)
        target_info, _ = libpq(plain_target)
        plain = _pipe(source_info, target_info, environment)
        report("backup_plain_pg_dump_pipe_pg_restore", plain, "s")
        # The same pipe at the compression level Timbel's dump uses (zlib 1, sources.py): how
        # much of the difference is the level rather than the encryption and the checks.
        with scratch_postgres() as level_target:
            level_info, _ = libpq(level_target)
            plain_level1 = _pipe(source_info, level_info, environment, "--compress=1 ")
        report("backup_plain_pg_dump_pipe_pg_restore_compress1", plain_level1, "s")
        # The same two programs one after the other, through a file: how a backup is used
        # (made at night, restored some other day), so nothing of the dump overlaps the
        # restore, as in Timbel's create, then restore.
        dumped = work / "plain.dump"
        plain_dump = _timed(
            ["pg_dump", "--format=custom", "--file", str(dumped), "--dbname", source_info],
            env=environment,
        )
        with scratch_postgres() as sequential_target:
            sequential_info, _ = libpq(sequential_target)
            plain_restore = _timed(
                ["pg_restore", "--no-owner", "--no-privileges", "--dbname", sequential_info,
                 str(dumped)],
                env=environment,
            )  # fmt: skip
        dumped.unlink()
        sequential = plain_dump + plain_restore
        report("backup_plain_pg_dump_to_file", plain_dump, "s")
        report("backup_plain_pg_restore_from_file", plain_restore, "s")

        env = os.environ | {
            "TIMBEL_HOME": str(work / "home"),
            "TIMBEL_DATABASE_URL": source,
            "TIMBEL_BACKUP_DIR": str(work / "backups"),
            "TIMBEL_BACKUP_KEY": base64.b64encode(os.urandom(32)).decode(),
            "TIMBEL_BACKUP_DAGSTER_STORAGE": "false",
        }
        started = time.perf_counter()
        made = subprocess.run(  # nosec B603  # the timbel command
            [timbel, "backup", "create", "--json"], check=True, env=env, capture_output=True
        )
        create = time.perf_counter() - started
        manifest = json.loads(made.stdout)
        report("backup_timbel_create", create, "s", create / plain_dump, "pg_dump to a file")
        report("backup_timbel_file", manifest["size"] / GIB, "GiB")
        restore = _timed(
            [timbel, "backup", "restore", manifest["id"], "--target", timbel_target, "--json"],
            env=env,
            stdout=subprocess.DEVNULL,
        )
        report("backup_timbel_restore", restore, "s", restore / plain_restore, "pg_restore")
        total = create + restore
        report("backup_timbel_create_plus_restore", total, "s", total / plain,
               "pg_dump | pg_restore")  # fmt: skip
        report("backup_timbel_create_plus_restore_vs_sequential", total, "s", total / sequential,
               "pg_dump to a file, then pg_restore")  # fmt: skip
        report("backup_timbel_create_plus_restore_vs_compress1", total, "s", total / plain_level1,
               "pg_dump --compress=1 | pg_restore")  # fmt: skip


if __name__ == "__main__":
    main()
