from django.apps import AppConfig


class CogloopConfig(AppConfig):
    name = "cogloop"
    verbose_name = "Cogloop"

    def ready(self) -> None:
        from cogloop.observability import observe_output
        from inference import hooks

        hooks.on_output_created(observe_output)
