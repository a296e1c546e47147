from django.apps import AppConfig


class OpsConfig(AppConfig):
    """The top floor for operators: dashboards, health, readiness and metrics views."""

    name = "ops"
    verbose_name = "Operations"

    def ready(self) -> None:
        from ops import observers

        observers.connect()
