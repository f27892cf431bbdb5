"""The request-body limit's error: 413 while the body streams in, before anything is parsed.

A bound route (binding.py) reads its body through a counting `receive`: a declared
Content-Length above MAX_REQUEST_BYTES is refused before a byte is taken, and a streamed
(chunked) body is cut off as soon as the running total passes it. A route that does not read its
body (or refuses the request first, e.g. 401 without a token) costs nothing.
"""

from __future__ import annotations

from starlette.exceptions import HTTPException


class BodyTooLarge(HTTPException):
    """413, raised inside the route's `receive()`; the rest of the body is never read."""

    def __init__(self, limit: int) -> None:
        super().__init__(
            413, f"request body exceeds MAX_REQUEST_BYTES ({limit} bytes)", headers={"Connection": "close"}
        )
