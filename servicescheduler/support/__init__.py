"""Small helpers every layer shares: UTC time and ISO 8601 (clock), bounded backoff, readable
validation errors. Depends on nothing else in the project."""
