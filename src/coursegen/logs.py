"""Log lines of a bounded length, whatever a client puts in its request line."""

from __future__ import annotations

import logging

# Long enough for every real path and query of the API and the page.
MAX_TARGET = 200


def shorten(text: str, limit: int = MAX_TARGET) -> str:
    """`text` cut to `limit` characters, with "…" where it was cut."""
    return text if len(text) <= limit else text[:limit] + "…"


class ShortTargets(logging.Filter):
    """Cut every long text argument of a record: a request target of 5,000 digits is one
    request, and must not be 5,000 characters of log per line that names it."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.args, tuple) and any(
            isinstance(arg, str) and len(arg) > MAX_TARGET for arg in record.args
        ):
            # uvicorn's access formatter unpacks the arguments, so their number stays.
            record.args = tuple(shorten(a) if isinstance(a, str) else a for a in record.args)
        return True


_SHORT_TARGETS = ShortTargets()


def shorten_request_targets() -> None:
    """Cut long targets in uvicorn's access and error logs (idempotent: added once)."""
    for name in ("uvicorn.access", "uvicorn.error"):
        logging.getLogger(name).addFilter(_SHORT_TARGETS)
