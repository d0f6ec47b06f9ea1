"""Storing records: turning what a source sent into warehouse rows and writing them.

Everything here writes on the caller's connection, so the caller's transaction decides what
is committed together: the one bulk upsert (`upsert.py`), the loaders that map records to
rows (`loaders.py`), storage's side of CI ingestion (`ingest.py`), the records that could not
be parsed (`rejects.py`), cluster usage rows (`cluster_usage.py`) and execution logs in
chunks (`logs.py`). A module that owns how its rows are laid out (the cluster-hour rows, the
log chunks) also reads them back, so that layout stays in one place.
"""
