"""Bounds every layer shares (HTTP bodies, patches, validation, server flags), kept below the HTTP layer:
how deep a value may nest and how many connections the server holds open by default."""
from __future__ import annotations

from typing import Any

# Open connections in total (each holds ~50 KiB of TLS and parser buffers); past it a new connection is
# closed at once and the client retries (--max-open-connections).
MAX_OPEN_CONNECTIONS = 4096
# Maps/lists in a body or object. Upstream's decoder allows 10000 levels; our pipeline (copy, patch, managed
# fields, encoding) is recursive Python, so we stop far earlier. No kind we serve nests beyond ~20 levels.
MAX_NESTING_DEPTH = 100


def exceeds_depth(value: Any, limit: int = MAX_NESTING_DEPTH) -> bool:
    """Whether maps/lists nest deeper than `limit` (counted as encoding/json does: one per open bracket).
    Iterative, one level at a time, so it is safe on any input (and cheap: it runs on every body and on
    every object validated)."""
    level = [value] if isinstance(value, (dict, list)) else []
    depth = 0
    while level:
        depth += 1
        if depth > limit:
            return True
        level = [child for node in level for child in (node.values() if isinstance(node, dict) else node)
                 if isinstance(child, (dict, list))]
    return False
