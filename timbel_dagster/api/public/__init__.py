"""Routes outside /api/v1: links people follow from messages, without an API token."""
