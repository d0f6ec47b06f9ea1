"""`make bench`: every benchmark, one line per figure."""

from __future__ import annotations

from benchmarks import import_time, jenkins_backfill, log_follow, sensor_tick, upsert

if __name__ == "__main__":
    print("# import time (median of 7 fresh interpreters each, alternating)", flush=True)
    import_time.main()
    print("# bulk upsert into PostgreSQL (100,000 executions + 500,000 stages)", flush=True)
    upsert.main()
    print("# Jenkins backfill, 100 jobs x 1,000 builds, from the fake Jenkins", flush=True)
    jenkins_backfill.main()
    print("# jenkins_build_sensor tick cost", flush=True)
    sensor_tick.main()
    print("# following a 200 MB log that grows while read, 3 forced disconnects", flush=True)
    log_follow.main()
