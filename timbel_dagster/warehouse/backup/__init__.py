"""Backups of the warehouse and of Dagster's PostgreSQL database (issue 17 item 1).

- crypto.py: the file format (AES-256-GCM in 1 MiB chunks) and the manifest's HMAC;
- store.py, s3.py: where backups are kept (a directory, or an S3-compatible store);
- sources.py, checksums.py: the databases (pg_dump/pg_restore, SQLite's online backup API,
  row counts and per-table checksums);
- operations.py, restore.py: create, list, verify; restore;
- retention.py: which backups to keep (7 daily, 4 weekly, 12 monthly) and prune;
- orphans.py: data no manifest lists (a failed delete's) and uploads a killed backup never
  completed, and when a prune may remove them;
- catalogue.py: the `backups` table (good, failed, pruned) and its state for the monitor;
- configured.py: all of it as the settings configure it.

Point-in-time recovery of a PostgreSQL cluster (issue 17 item 2):

- wal.py: WAL segment names, timelines, the archive check, the archive_command's copy;
- archive_command.py: that copy as a standard-library-only `python -m` archive_command;
- basebackup.py: base backups with pg_basebackup, verified, and the PostgreSQL programs;
- base_record.py: a base backup taken, failed or pruned, in the warehouse's audit log;
- base_state.py: the newest base backup taken and failed, for the monitor's rules;
- base_retention.py: keep the newest N base backups, and the archived WAL they need;
- pitr.py: choose the base backup, check everything, build the recovered data directory;
- recovered_server.py: start it, follow it to its target, read where it stopped.
"""
