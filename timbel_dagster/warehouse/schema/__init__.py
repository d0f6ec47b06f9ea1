"""The warehouse schema: SQLAlchemy 2 table models, shared by SQLite and PostgreSQL.

`models.py` holds `Base`, the delivery tables (pipelines, executions, commits, deployments,
incidents, users, the audit log) and imports every other table module, so importing it puts
all tables on `Base.metadata`; the other modules hold the tables of one feature each
(`cluster`, `deploy`, `ml`, `security`, ...). Beside them: the column types that behave the
same on both databases (`types.py`) and the stable row ids derived from natural keys
(`ids.py`). Nothing here reads or writes rows.
"""
