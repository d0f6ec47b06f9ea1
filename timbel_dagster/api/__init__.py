"""The versioned REST API (issue 15): FastAPI under /api/v1, a face beside the CLI.

Each route is a thin layer over the functions the CLI uses; `timbel api serve` starts it.
"""
