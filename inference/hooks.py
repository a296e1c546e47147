"""Explicit hooks through which higher apps learn about inference events without an import.

``feedback`` registers a callback here in its AppConfig.ready(); inference calls every
registered callback inside the transaction that created the Output, so a capture decision
commits or rolls back together with the Output it is about.
"""

from collections.abc import Callable

_output_created: list[Callable] = []


def on_output_created(callback: Callable) -> Callable:
    if callback not in _output_created:
        _output_created.append(callback)
    return callback


def output_created(output) -> None:
    for callback in list(_output_created):
        callback(output)
