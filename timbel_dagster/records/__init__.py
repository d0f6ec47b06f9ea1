"""Records: the frozen dataclasses one layer hands to another (clients to storage, storage to
sensors). The bottom layer of DESIGN.md 1b: plain Python, importing nothing of ours, so both
sides can share them without importing each other."""
