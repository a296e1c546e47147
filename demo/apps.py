from django.apps import AppConfig


class DemoConfig(AppConfig):
    """The embedded demo: the `demo` command, simulated traffic and reviewers (dev tooling)."""

    name = "demo"
    verbose_name = "Demo"
