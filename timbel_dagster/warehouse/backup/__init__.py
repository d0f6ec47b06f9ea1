"""Backups of the warehouse (issue 17 item 1): encrypted, checksummed, restorable.

- crypto.py: the file format (AES-256-GCM in 1 MiB chunks) and the manifest's HMAC;
- store.py: where backups are kept (a directory; S3 implements the same interface later);
- sources.py: the databases (pg_dump/pg_restore, SQLite's online backup API, row counts);
- operations.py: create, list, verify and restore.

Point-in-time recovery of a PostgreSQL cluster (issue 17 item 2):

- wal.py: WAL segment names, timelines, the archive check, the archive_command's copy;
- archive_command.py: that copy as a standard-library-only `python -m` archive_command;
- basebackup.py: base backups with pg_basebackup, verified, and the PostgreSQL programs;
- pitr.py: choose the base backup, check everything, build the recovered data directory;
- recovered_server.py: start it, follow it to its target, read where it stopped.
"""
