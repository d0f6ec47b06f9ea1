"""The fast form of `timbel backup archive-wal`, for PostgreSQL's archive_command (one
line in postgresql.conf; docs/operations.md, "Point-in-time recovery"):

    archive_command = '/opt/timbel/.venv/bin/python -m
        timbel_dagster.warehouse.backup.archive_command %p %f /var/lib/timbel/wal-archive'

The server runs archive_command once per 16 MiB segment, one after the other, so its start
time bounds how fast WAL can be archived. `timbel` loads every command group (2-7 s a
start, measured in docs/benchmarks.md); this module loads only wal.py (about 0.1 s). Same
copy (fsynced, linked into place, never overwriting a different file); it exits 0 when the
segment is archived or already there identical, else 1 with one line on stderr (the server
retries it).
"""

from __future__ import annotations

import sys
from pathlib import Path

from timbel_dagster.warehouse.backup.crypto import BackupError
from timbel_dagster.warehouse.backup.wal import archive_wal_file

USAGE = "usage: python -m timbel_dagster.warehouse.backup.archive_command %p %f ARCHIVE_DIR"


def main(argv: list[str]) -> int:
    if len(argv) != 3:
        sys.stderr.write(USAGE + "\n")
        return 2
    source, name, archive = argv
    try:
        archive_wal_file(Path(source), name, Path(archive))
    except (BackupError, OSError) as error:
        sys.stderr.write(f"timbel archive_command: {error}\n")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
