"""The hash-chained audit log: appending and verifying events (`chain.py`) and retention,
which archives old events to verified JSON Lines files with checkpoints (`archive.py`).
Events are appended on the caller's connection, in the same transaction as the change they
record.
"""
