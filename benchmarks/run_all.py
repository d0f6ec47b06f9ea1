"""`make bench`: every benchmark, one line per figure."""

from __future__ import annotations

from benchmarks import import_time, upsert

if __name__ == "__main__":
    print("# import time (median of 7 fresh interpreters each, alternating)")
    import_time.main()
    print("# bulk upsert into PostgreSQL (100,000 executions + 500,000 stages)")
    upsert.main()
