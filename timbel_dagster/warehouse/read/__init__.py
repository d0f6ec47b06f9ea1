"""Reading the warehouse: queries and summaries shared by the CLI, the assets and notebooks.

Read-only functions over a connection: executions and stages (`queries.py`), tables as
pandas DataFrames with deployments counted once (`frames.py`), duration percentiles and stage
timelines (`history.py`) and executions per day (`execution_days.py`). Nothing here writes.
"""
