"""Django system checks: serving settings that would only fail once a version is loaded."""

from __future__ import annotations

import re

from django.conf import settings
from django.core import checks

from inference.engine.loading import resolve_placement


@checks.register(checks.Tags.compatibility)
def serving_placement(app_configs=None, **kwargs) -> list[checks.CheckMessage]:
    """COGLOOP SERVE_DEVICE / SERVE_DTYPE name a device this process has and a known dtype."""
    c = settings.COGLOOP
    # torch is what knows the devices; a process that never loads a model does not import it, and
    # neither do `check` and `migrate` for a CPU placement (the inference role checks it at load).
    if settings.COGLOOP_ROLE in settings.MODEL_FREE_ROLES or c["SERVE_DEVICE"].strip().lower() == "cpu":
        return _placement_names_problems(c["SERVE_DEVICE"], c["SERVE_DTYPE"])
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


def _placement_names_problems(device: str, dtype: str) -> list[checks.CheckMessage]:
    """The names alone, without torch: a device torch could not see is the inference role's to find."""
    problems = []
    if not re.fullmatch(r"cpu|cuda(:\d+)?", device.strip().lower()):
        problems.append(f"device must be 'cpu', 'cuda' or 'cuda:N', got {device!r}")
    if dtype.strip().lower() not in ("auto", "float32", "bfloat16", "float16"):
        problems.append(f"dtype must be one of auto, float32, bfloat16, float16; got {dtype!r}")
    return [
        checks.Error(
            f"COGLOOP SERVE_DEVICE / SERVE_DTYPE: {problem}",
            id="inference.E001",
            hint="Set SERVE_DEVICE to cpu, cuda or cuda:N and SERVE_DTYPE to auto, float32, "
            "bfloat16 or float16.",
        )
        for problem in problems
    ]
