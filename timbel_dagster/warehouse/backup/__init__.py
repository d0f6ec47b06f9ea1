"""Backups of the warehouse (issue 17 item 1): encrypted, checksummed, restorable.

- crypto.py: the file format (AES-256-GCM in 1 MiB chunks) and the manifest's HMAC;
- store.py: where backups are kept (a directory; S3 implements the same interface later);
- sources.py: the databases (pg_dump/pg_restore, SQLite's online backup API, row counts);
- operations.py: create, list, verify and restore.
"""
