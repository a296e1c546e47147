"""Django system checks: serving settings that would only fail once a version is loaded."""

from __future__ import annotations

from django.conf import settings
from django.core import checks

from inference.engine.loading import resolve_placement


@checks.register(checks.Tags.compatibility)
def serving_placement(app_configs=None, **kwargs) -> list[checks.CheckMessage]:
    """COGLOOP SERVE_DEVICE / SERVE_DTYPE name a device this process has and a known dtype."""
    c = settings.COGLOOP
    try:
        resolve_placement(c["SERVE_DEVICE"], c["SERVE_DTYPE"])
    except ValueError as exc:
        return [
            checks.Error(
                f"COGLOOP SERVE_DEVICE / SERVE_DTYPE: {exc}",
                id="inference.E001",
                hint="Set SERVE_DEVICE to cpu, cuda or cuda:N and SERVE_DTYPE to auto, float32, "
                "bfloat16 or float16.",
            )
        ]
    return []
