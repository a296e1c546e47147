"""Where model versions live, and the channel that announces a promotion.

Below both the registry's writes (services) and the processes that follow the registry
(serving), so each imports it and neither imports the other.
"""

from __future__ import annotations

from pathlib import Path

from django.conf import settings

from cogloop.errors import ApplicationError

# Redis pub/sub channel on which a promotion is announced to every serving process.
SWAP_CHANNEL = "cogloop:model-swap"


def store_path(relative: str) -> Path:
    """Resolve a path inside the model store, refusing anything that escapes it."""
    root = Path(settings.MODEL_STORE).resolve()
    path = (root / relative).resolve()
    if path != root and root not in path.parents:
        raise ApplicationError(f"path {relative!r} is outside the model store", code="path_outside_store")
    return path
