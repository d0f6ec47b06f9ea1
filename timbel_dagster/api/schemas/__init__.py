"""Pydantic models of the API's bodies, one module per resource, each with an example."""
