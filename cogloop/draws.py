"""Stable pseudo-random draws: the same key always draws the same number, in every process.

Audits, double annotation and second review pick their share by these, so a decision can be
reproduced and a retried task decides as the first attempt did.
"""

import hashlib


def stable_draw(kind: str, key: object) -> float:
    """A number in [0, 1) fixed by (kind, key)."""
    return int(hashlib.sha256(f"{kind}:{key}".encode()).hexdigest()[:8], 16) / 2**32
